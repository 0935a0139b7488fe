"""Inference precision: which reduced precisions a device computes natively, the user's choice
resolved against them, and the autocast that applies it."""

from __future__ import annotations

import contextlib
from typing import ContextManager

import torch

from cnnlab.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
LOW_PRECISION = {"bf16": torch.bfloat16, "fp16": torch.float16}


def native_precisions(device: torch.device) -> tuple[str, ...]:
    """The reduced precisions ``device`` computes natively, fastest first. Emulated ones
    (bf16 on AVX-512 without its BF16 extension, on GPUs before Ampere) are slower than fp32
    and are left out."""
    if device.type == "cuda":
        major, _ = torch.cuda.get_device_capability(device)
        return ("bf16", "fp16") if major >= 8 else ("fp16",)
    if device.type == "mps":
        return ("fp16",)
    if device.type == "cpu":
        found = []
        if torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported():
            found.append("bf16")
        if torch.cpu._is_amx_fp16_supported():
            found.append("fp16")
        return tuple(found)
    return ()


def inference_precision(name: str, device: torch.device) -> str:
    """``name`` for ``device``: 'auto' is bf16 where the device runs it natively (on an
    AVX-512 BF16 CPU, 2 cores: PSMNet at 384x1248 2.1x faster than fp32, 3.36 vs 7.15 s, EPE
    on the KITTI 2015 pairs 0.34942 vs 0.34967 px), else fp32; a precision the device would
    only emulate is refused."""
    if name not in PRECISIONS:
        raise ConfigError(f"{name}: choose from {', '.join(PRECISIONS)}", parameter="precision")
    native = native_precisions(device)
    if name == "auto":
        return "bf16" if "bf16" in native else "fp32"
    if name != "fp32" and name not in native:
        offered = ", ".join(("fp32", *native))
        raise ConfigError(f"{name}: {device.type} on this machine has no native "
                          f"{name} (emulated, it is slower than fp32); use {offered}",
                          parameter="precision")
    return name


def inference_autocast(device: torch.device, precision: str) -> ContextManager[object]:
    """Autocast for a resolved inference precision (fp32: nothing)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=LOW_PRECISION[precision])

"""Inference precision: which reduced precisions a device computes natively, the user's choice
resolved against them, and the autocast that applies it."""

from __future__ import annotations

import contextlib
from typing import ContextManager

import torch

from cnnlab.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
LOW_PRECISION = {"bf16": torch.bfloat16, "fp16": torch.float16}
# int8: a lab's quantized stage (stereo.inference.int8), on CPUs with int8 dot products


def int8_native() -> bool:
    """Whether this CPU has VNNI int8 dot products (AVX-512 VNNI or AVX-VNNI), which
    PyTorch's x86 quantized engine (oneDNN) needs to be faster than bf16."""
    if torch.cpu._is_vnni_supported():  # AVX-512 VNNI
        return True
    capabilities = getattr(torch.cpu, "get_capabilities", None)
    return bool(capabilities is not None and capabilities().get("avx_vnni", False))


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


def float_precision(device: torch.device) -> str:
    """bf16 where ``device`` computes it natively, else fp32: what "auto" resolves to, and the
    precision of the float parts under int8."""
    return "bf16" if "bf16" in native_precisions(device) else "fp32"


def inference_precision(name: str, device: torch.device) -> str:
    """``name`` for ``device``: 'auto' is bf16 where the device runs it natively (on an
    AVX-512 BF16 CPU, 2 cores: PSMNet at 384x1248 2.1x faster than fp32, 3.36 vs 7.15 s, EPE
    on the KITTI 2015 pairs 0.34942 vs 0.34967 px), else fp32; a precision the device would
    only emulate is refused. int8 (a lab's quantized stage) needs a CPU with VNNI."""
    if name not in PRECISIONS:
        raise ConfigError(f"{name}: choose from {', '.join(PRECISIONS)}", parameter="precision")
    native = native_precisions(device)
    if name == "auto":  # never int8: it is a choice (calibrated, deprecated modules)
        return float_precision(device)
    if name == "int8":
        if device.type != "cpu" or not int8_native():
            where = ("this CPU has no VNNI int8 dot products" if device.type == "cpu"
                     else f"runs on a CPU with VNNI, not {device.type}")
            raise ConfigError(f"int8: {where}; use {', '.join(('fp32', *native))}",
                              parameter="precision")
        return name
    if name != "fp32" and name not in native:
        offered = ", ".join(("fp32", *native))
        raise ConfigError(f"{name}: {device.type} on this machine has no native "
                          f"{name} (emulated, it is slower than fp32); use {offered}",
                          parameter="precision")
    return name


def inference_autocast(device: torch.device, precision: str) -> ContextManager[object]:
    """Autocast for a resolved inference precision (fp32: nothing; int8: the float parts'
    precision, bf16 where native, else fp32)."""
    if precision == "int8":
        precision = float_precision(device)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=LOW_PRECISION[precision])

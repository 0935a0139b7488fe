"""Device selection, seeding, mixed precision for training (CUDA only) and a network made ready
to train: channels_last, DDP, torch.compile, and the unwrapping that saving needs."""

from __future__ import annotations

import contextlib
import os
import random
import shutil

import numpy as np
import torch
from torch import nn

from cnnlab.engine.config import AMP
from cnnlab.engine.distributed import SINGLE_PROCESS, DistInfo
from cnnlab.engine.precision import native_precisions
from cnnlab.errors import ConfigError

AMP_DTYPES = dict(zip(AMP, (None, torch.bfloat16, torch.float16), strict=True))  # name -> dtype


def select_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when present, else CPU; an unavailable explicit device is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"{name}: unknown device (use auto, cpu, cuda or cuda:N)",
                          parameter="device") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{name}: CUDA is not available on this machine", parameter="device")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"{name}: this machine has {torch.cuda.device_count()} "
                          "CUDA device(s)", parameter="device")
    if device.type not in ("cpu", "cuda"):
        try:
            torch.empty(1, device=device)
        except (RuntimeError, AssertionError):
            raise ConfigError(f"{name}: not available on this machine",
                              parameter="device") from None
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def check_amp(device: torch.device, amp: str) -> None:
    """``amp`` refused where ``autocast`` would leave it out (fp16 off CUDA, bf16 on a CPU
    without native bf16): a setting that changes nothing is refused, not ignored."""
    if amp == "none" or device.type == "cuda":
        return
    if amp == "bf16" and device.type == "cpu" and "bf16" in native_precisions(device):
        return
    where = ("this CPU has no native bf16 (AVX-512 BF16 or AMX), and emulated bf16 would be "
             "slower" if amp == "bf16" else f"fp16 autocast runs on CUDA only, not on {device}")
    raise ConfigError(f"{amp}: {where}; here it would change nothing (use none)",
                      parameter="amp")


def autocast(device: torch.device, amp: str):
    """Autocast for ``--amp``: bf16 or fp16 on CUDA; bf16 on a CPU that computes it natively
    (AVX-512 BF16 or AMX, see ``engine.precision``); otherwise nothing, since emulated bf16
    and CPU fp16 would slow the convolutions down."""
    if amp not in AMP_DTYPES:
        raise ConfigError(f": choose from {', '.join(AMP_DTYPES)}, not {amp!r}", parameter="amp")
    dtype = AMP_DTYPES[amp]
    if dtype is not None and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=dtype)
    if amp == "bf16" and device.type == "cpu" and "bf16" in native_precisions(device):
        return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_grad_scaler(device: torch.device, amp: str) -> torch.amp.GradScaler:
    """A loss scaler that is active only for fp16 on CUDA."""
    return torch.amp.GradScaler("cuda", enabled=(amp == "fp16" and device.type == "cuda"))


def prepare_model(network: nn.Module, device: torch.device, compile_model: bool = False,
                  channels_last: bool = True, info: DistInfo = SINGLE_PROCESS) -> nn.Module:
    """The module to train: ``network`` on the device (in channels_last for 2-D conv nets:
    measured faster on CUDA and on this CPU, x1.12 simple_cnn, x1.24 narrow ResNet-18 per
    step), wrapped in DDP under torchrun, then compiled if asked (CPU too: inductor needs a
    C++ compiler there). ``network`` itself stays the unwrapped module whose state is saved."""
    network.to(device)
    if channels_last:
        network.to(memory_format=torch.channels_last)
    model = network
    if info.enabled:
        model = nn.parallel.DistributedDataParallel(
            network, device_ids=[info.local_rank] if device.type == "cuda" else None)
    if compile_model:
        check_compile(device)
        model = torch.compile(model)
    return model


def check_compile(device: torch.device) -> None:
    """A one-line error, before any data is read, where torch.compile cannot work."""
    if device.type == "cpu" and not _cpp_compiler():
        raise ConfigError(": torch.compile on the CPU needs a C++ compiler (g++ or clang++, or "
                          "$CXX), and none was found; install one or train without compiling",
                          parameter="compile")


def _cpp_compiler() -> str | None:
    """The C++ compiler inductor would use on the CPU, if one is installed."""
    names = [os.environ["CXX"]] if os.environ.get("CXX") else []
    return next((path for name in [*names, "g++", "clang++", "c++"]
                 if (path := shutil.which(name))), None)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The network inside DDP (``.module``) and torch.compile (``._orig_mod``) wrappers, whose
    state dict has the plain parameter names that eval, predict and --init expect."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model

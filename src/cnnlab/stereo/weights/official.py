"""Safe import of PSMNet weights in the official release format (JiaRenChang/PSMNet).

The official files (``*.tar``, legacy or zip torch pickles) hold ``{"state_dict": ...}`` with
DataParallel's ``module.`` prefix. They are read only through ``torch.load(...,
weights_only=True)``, whose restricted unpickler builds tensors and plain containers and
refuses every other global, so a tampered file runs no code. Names are translated by a rule
derived from cnnlab's own modules; every official tensor must be used exactly once with the
right shape, and BatchNorm's ``num_batches_tracked`` counters, which releases written before
PyTorch 0.4.1 lack, are filled explicitly.
"""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path

import torch
from torch import nn

from cnnlab.engine.checkpoint import is_safetensors
from cnnlab.errors import CheckpointError
from cnnlab.stereo.models.blocks import ConvBN
from cnnlab.stereo.models.psmnet import legacy_name

DATA_PARALLEL_PREFIX = "module."
COUNTER = "num_batches_tracked"
# after legacy_name (cnnlab's first module names were the official ones where the layers
# match): cnnlab module path prefix -> official one (indices shift: the official names count
# from 1 or 2, and its SPP branches start with a parameter-free AvgPool at index 0)
_RENAMES = (
    (re.compile(r"^feature_extraction\.spp\.branches\.(\d+)\.0\."),
     lambda m: f"feature_extraction.branch{int(m.group(1)) + 1}.1."),
    (re.compile(r"^hourglasses\.(\d+)\."), lambda m: f"dres{int(m.group(1)) + 2}."),
    (re.compile(r"^residuals\.(\d+)\."), lambda m: f"dres{int(m.group(1)) + 2}."),
)


def is_torch_pickle(path: Path) -> bool:
    """True for a torch.save file (zip or legacy pickle), as opposed to safetensors (whose
    header length may begin with the pickle opcode byte 0x80, so it is ruled out first)."""
    if is_safetensors(path):
        return False
    with open(path, "rb") as handle:
        head = handle.read(4)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def read_official_state(path: Path, where: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors of an official file, ``module.`` stripped; runs no code from the file.
    Errors name ``where`` (default: the path)."""
    where = where or str(path)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols it finds odd
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # on malformed input the unpickler raises almost any type
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if isinstance(exc, pickle.UnpicklingError) and found:
            raise CheckpointError(f"{where}: refused: this pickle asks for more than tensors and "
                                  f"containers (it needs {found.group(1)}); cnnlab never runs "
                                  "code from a weights file") from None
        raise CheckpointError(f"{where}: not a readable PyTorch weights file "
                              f"({_load_error_detail(exc)})") from None
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError(f"{where}: no state_dict of named tensors inside")
    return {k.removeprefix(DATA_PARALLEL_PREFIX): v for k, v in state.items()}


def _load_error_detail(exc: Exception) -> str:
    """The informative line of torch.load's message (not its advice to load unsafely)."""
    boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation")
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(boilerplate)]
    return (useful[0] if useful else type(exc).__name__)[:160]


def detect_variant(state: dict[str, torch.Tensor]) -> str:
    """stackhourglass has classif1..3; basic has one ``classify`` head."""
    if any(k.startswith("classif1.") for k in state):
        return "stackhourglass"
    if any(k.startswith("classify.") for k in state):
        return "basic"
    raise CheckpointError("not PSMNet weights: no classif1 (stackhourglass) or classify "
                          "(basic) head")


def infer_align_corners(state: dict[str, torch.Tensor]) -> tuple[bool, str]:
    """PyTorch 0.4.1 added BatchNorm's ``num_batches_tracked`` and, in the same release, made
    upsampling default to ``align_corners=False``; the official code never sets it. So a file
    without the counters was trained with the old behaviour (True), one with them with False."""
    if any(k.endswith(COUNTER) for k in state):
        return False, ("the file has num_batches_tracked counters: written by PyTorch >= 0.4.1, "
                       "whose upsampling defaults to align_corners=False")
    return True, ("the file has no num_batches_tracked counters: written by PyTorch <= 0.4.0, "
                  "whose upsampling behaved as align_corners=True")


def official_name(name: str, variant: str) -> str:
    """cnnlab module path -> the official one (``hourglasses.0.conv1`` -> ``dres2.conv1``);
    ConvBN's children are renamed by the caller, which knows the modules."""
    name = legacy_name(name)
    for pattern, replace in _RENAMES:
        name = pattern.sub(replace, name)
    head = "classif{}." if variant == "stackhourglass" else "classify."
    return re.sub(r"^classifiers\.(\d+)\.", lambda m: head.format(int(m.group(1)) + 1), name)


def _name_map(model: nn.Module, variant: str) -> dict[str, str]:
    """Every key of ``model.state_dict()`` -> its official name. ConvBN's ``conv``/``bn``
    children are the official Sequential's indices 0 and 1."""
    convbn = {path for path, module in model.named_modules() if isinstance(module, ConvBN)}
    mapping = {}
    for key in model.state_dict():
        owner, _, leaf = key.rpartition(".")
        parent, _, child = owner.rpartition(".")
        if parent in convbn and child in ("conv", "bn"):
            owner = f"{parent}.{'0' if child == 'conv' else '1'}"
        mapping[key] = official_name(f"{owner}.{leaf}", variant)
    return mapping


def convert_official_state(state: dict[str, torch.Tensor], model: nn.Module, variant: str,
                           where: str) -> dict[str, torch.Tensor]:
    """Rename and check: a state dict for ``model`` that uses every official tensor once."""
    expected = model.state_dict()
    mapping = _name_map(model, variant)
    converted, missing, wrong_shape = {}, [], []
    for ours, theirs in mapping.items():
        if theirs not in state:
            if ours.endswith(COUNTER):  # pre-0.4.1 files have none: start the count at 0
                converted[ours] = torch.zeros((), dtype=torch.long)
            else:
                missing.append(theirs)
            continue
        tensor = state[theirs]
        if tensor.shape != expected[ours].shape:
            wrong_shape.append(f"{theirs} {tuple(tensor.shape)} (PSMNet needs "
                              f"{tuple(expected[ours].shape)})")
            continue
        converted[ours] = tensor.to(expected[ours].dtype)
    unused = sorted(set(state) - set(mapping.values()))
    if missing or unused or wrong_shape:
        problems = []
        for label, items in (("missing", missing), ("unexpected", unused),
                             ("wrong shape", wrong_shape)):
            if items:
                shown = ", ".join(items[:3]) + (f" and {len(items) - 3} more"
                                                if len(items) > 3 else "")
                problems.append(f"{len(items)} {label}: {shown}")
        raise CheckpointError(f"{where}: does not fit PSMNet({variant}): " + "; ".join(problems))
    return converted

"""Checkpoints as safetensors (no pickle) with JSON metadata, written atomically.

One file ``NAME.safetensors`` holds the tensors (model weights under ``model.``, optimizer
state under ``optim.``, RNG states under ``rng.``) and, in its header, the JSON metadata; a
``NAME.json`` sidecar repeats the metadata for people and tools.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from cnnlab.engine.atomic import atomic_write, atomic_write_json
from cnnlab.errors import CheckpointError, shown_path

META_KEY = "cnnlab"


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, plain = {}, {"param_groups": state["param_groups"], "state": {}}
    for param_id, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{param_id}.{key}"] = value
            else:
                plain["state"].setdefault(str(param_id), {})[key] = value
    return tensors, plain


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], plain: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, param_id, key = name.split(".", 2)
        state.setdefault(int(param_id), {})[key] = value
    for param_id, entries in plain["state"].items():
        state.setdefault(int(param_id), {}).update(entries)
    return {"state": state, "param_groups": plain["param_groups"]}


def _save_file(tensors: dict[str, torch.Tensor], tmp: Path, header: dict[str, str],
               path: Path) -> None:
    """safetensors' save_file, its I/O failures (a full disk) as the OSError they are, so
    that they are reported like any other failed write."""
    try:
        save_file(tensors, str(tmp), metadata=header)
    except SafetensorError as exc:
        found = re.search(r"os error (\d+)", str(exc))
        if found is None:  # not an I/O failure: left as it is
            raise
        code = int(found.group(1))
        raise OSError(code, os.strerror(code), str(path)) from None


def save_checkpoint(path: Path, model_state: dict[str, torch.Tensor], metadata: dict,
                    optimizer_state: dict | None = None,
                    rng_states: dict[str, torch.Tensor] | None = None,
                    sidecar: bool = True) -> Path:
    """Write ``path`` (.safetensors) and, with ``sidecar``, a ``.json`` copy of the metadata
    for people and tools, atomically; returns the path."""
    path = Path(path)
    tensors = {f"model.{k}": v for k, v in model_state.items()}
    meta = dict(metadata)
    if optimizer_state is not None:
        optim_tensors, meta["optimizer"] = _flatten_optimizer(optimizer_state)
        tensors.update(optim_tensors)
    for name, value in (rng_states or {}).items():
        tensors[f"rng.{name}"] = value
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    header = {META_KEY: json.dumps(meta)}
    atomic_write(path, lambda tmp: _save_file(tensors, tmp, header, path))
    if sidecar:
        atomic_write_json(path.with_suffix(".json"),
                          {k: v for k, v in meta.items() if k != "optimizer"})
    return path


def resolve_checkpoint(path: str | Path, which: str = "best") -> Path:
    """A run directory (its ``which`` checkpoint, else ``last``) or a .safetensors file."""
    path = Path(path)
    if path.is_dir():
        for name in (which, "last"):
            candidate = path / f"{name}.safetensors"
            if candidate.is_file():
                return candidate
        raise CheckpointError(f"{path}: no {which}.safetensors or last.safetensors in the run dir")
    if not path.exists():
        raise CheckpointError(f"{shown_path(path)}: no such run directory or checkpoint")
    return path


def is_safetensors(path: Path) -> bool:
    """True when ``path`` starts as a safetensors file does: an 8-byte little-endian header
    length that fits in the file, then a JSON object."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) < 9:
        return False
    return head[8:9] == b"{" and 8 + int.from_bytes(head[:8], "little") <= path.stat().st_size


def read_metadata(path: Path) -> dict:
    """The JSON metadata stored in a checkpoint's header."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a safetensors checkpoint ({exc})") from None
    if META_KEY not in header:
        raise CheckpointError(f"{path}: safetensors file without cnnlab metadata")
    try:
        return json.loads(header[META_KEY])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: corrupt metadata ({exc})") from None


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """-> {'metadata', 'model', 'optimizer' (or None), 'rng'} without unpickling anything."""
    path = Path(path)
    metadata = read_metadata(path)
    try:
        tensors = load_file(str(path), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read tensors ({exc})") from None
    model = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    rng = {k[4:]: v for k, v in tensors.items() if k.startswith("rng.")}
    optimizer = None
    if "optimizer" in metadata:
        optim_tensors = {k: v for k, v in tensors.items() if k.startswith("optim.")}
        optimizer = _unflatten_optimizer(optim_tensors, metadata.pop("optimizer"))
    return {"metadata": metadata, "model": model, "optimizer": optimizer, "rng": rng}


# prefixes of wrapped modules: DDP ('module.'); torch.compile ('_orig_mod.'), which runs with
# --compile wrote into their checkpoints before the wrappers were removed on saving
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def unwrapped_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` without wrapper prefixes that every key carries."""
    while state:
        prefix = next((p for p in WRAPPER_PREFIXES if all(k.startswith(p) for k in state)), None)
        if prefix is None:
            return state
        state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def check_finite(state: dict[str, torch.Tensor], path: Path | str) -> None:
    """Refuse weights holding NaN or infinity: a network with them predicts NaN for every
    input, which no later step should print as a result (a diverged run, a damaged file)."""
    for name, tensor in state.items():
        if (isinstance(tensor, torch.Tensor) and tensor.is_floating_point()
                and not bool(torch.isfinite(tensor).all())):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(f"{path}: weight {name} holds {bad} non-finite value(s) (NaN "
                                  "or infinity); the file is damaged or the run diverged")


def load_model_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """load_state_dict with a one-line error that names the checkpoint on a mismatch; keys of a
    wrapped (DDP or compiled) module are accepted. Weights that are not all finite are
    refused (``check_finite``)."""
    check_finite(state, path)
    try:
        model.load_state_dict(unwrapped_state(state), strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:2])
        raise CheckpointError(f"{path}: weights do not fit the model ({detail[:300]})") from None

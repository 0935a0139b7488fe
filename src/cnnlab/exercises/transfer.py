"""Giving a student's module the reference's weights by order, so its names do not matter.

Parameters are matched to parameters and buffers to buffers in registration order; when that
order does not fit (conv1, bn1, conv2, bn2 against d2l's conv1, conv2, bn1, bn2) they are
matched in order within each kind of layer: convolutions, then normalisations, then the rest.
Tensors that are a derived copy (the conv a ``ConvBN`` folds its BN into at load time) are not
part of a module's state here: the conv and BN it came from stay untouched beside it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.modules.conv import _ConvNd
from torch.nn.parameter import UninitializedBuffer, UninitializedParameter

from cnnlab.exercises.result import Failure, shape_text
from cnnlab.stereo.models.blocks import ConvBN

_KINDS = ("conv", "norm", "other")


class WeightsMismatch(Failure):
    """The student's parameters or buffers do not pair up with the reference's by order."""


@dataclass(frozen=True)
class _Entry:
    name: str
    tensor: torch.Tensor
    kind: str


def _kind(module: nn.Module) -> str:
    if isinstance(module, _ConvNd):
        return "conv"
    return "norm" if isinstance(module, _NormBase) else "other"


def state_entries(module: nn.Module) -> tuple[list[_Entry], list[_Entry]]:
    """(parameters, buffers) in registration order, each with the kind of layer owning it,
    without the fused copies of ``ConvBN``."""
    derived = tuple(f"{name}.fused." if name else "fused."
                    for name, sub in module.named_modules()
                    if isinstance(sub, ConvBN) and sub.fused is not None)
    owners = dict(module.named_modules())

    def entries(named) -> list[_Entry]:
        out = []
        for name, tensor in named:
            if name.startswith(derived):
                continue
            owner = owners[name.rpartition(".")[0]]
            out.append(_Entry(name, tensor, _kind(owner)))
        return out

    return entries(module.named_parameters()), entries(module.named_buffers())


def _grouped(entries: list[_Entry]) -> list[_Entry]:
    return sorted(entries, key=lambda e: _KINDS.index(e.kind))  # stable: order kept per kind


def _mismatch(source: list[_Entry], target: list[_Entry], what: str, yours: str,
              reference: str) -> str | None:
    """None if the lists pair up by shape, else the precise difference."""
    if len(source) != len(target):
        missing, extra = _unpaired(source, target)
        detail = "; ".join(part for part in (
            _listing("missing from", missing, yours), _listing("extra in", extra, yours))
            if part)
        return (f"{yours} has {len(target)} {what} tensors, {reference} has {len(source)}"
                + (f" ({detail})" if detail else ""))
    for index, (s, t) in enumerate(zip(source, target)):
        if tuple(s.tensor.shape) != tuple(t.tensor.shape):
            return (f"{what} {index} by order: {yours}'s '{t.name}' has shape "
                    f"{shape_text(t.tensor)}, {reference}'s '{s.name}' has "
                    f"{shape_text(s.tensor)}")
    return None


def _unpaired(source: list[_Entry], target: list[_Entry]) -> tuple[list[_Entry], list[_Entry]]:
    """(reference tensors with no counterpart, student tensors with none): the longest
    alignment of (kind of layer, shape) within each kind, as a diff does it."""
    source, target = _grouped(source), _grouped(target)
    keys = [(e.kind, tuple(e.tensor.shape)) for e in source]
    other = [(e.kind, tuple(e.tensor.shape)) for e in target]
    missing, extra = [], []
    matcher = difflib.SequenceMatcher(None, keys, other, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            missing += source[i1:i2]
            extra += target[j1:j2]
    return missing, extra


def _listing(label: str, entries: list[_Entry], owner: str) -> str:
    """e.g. "missing from your module: the reference's 'conv1.bias' (3,)"."""
    if not entries:
        return ""
    whose = "the reference's " if label.startswith("missing") else ""
    shown = ", ".join(f"'{e.name}' {shape_text(e.tensor)}" for e in entries[:4])
    more = f" and {len(entries) - 4} more" if len(entries) > 4 else ""
    return f"{label} {owner}: {whose}{shown}{more}"


def _pairs(source: list[_Entry], target: list[_Entry], what: str, yours: str,
           reference: str) -> tuple[list[tuple[_Entry, _Entry]], bool]:
    """Pairs by registration order, else by order within each kind of layer; the bool says
    which was used. A Failure names the first mismatch in registration order."""
    problem = _mismatch(source, target, what, yours, reference)
    if problem is None:
        return list(zip(source, target)), False
    if _mismatch(_grouped(source), _grouped(target), what, yours, reference) is None:
        return list(zip(_grouped(source), _grouped(target))), True
    raise WeightsMismatch(f"weights by order: {problem}")


def _same_names(source: list[_Entry], target: list[_Entry]) -> list | None:
    """Pairs by name when both modules name every tensor alike with the same shapes (a module
    written with the reference's names may declare its layers in another order than it uses
    them); None otherwise, and the copy goes by order."""
    named = {entry.name: entry for entry in source}
    if len(named) != len(source) or {e.name for e in target} != set(named):
        return None
    pairs = [(named[entry.name], entry) for entry in target]
    if any(tuple(s.tensor.shape) != tuple(t.tensor.shape) for s, t in pairs):
        return None
    return pairs


def copy_by_order(source: nn.Module, target: nn.Module, yours: str = "your module",
                  reference: str = "the reference") -> str:
    """Copy ``source``'s parameters and buffers into ``target`` by order (see the module
    docstring); returns what was copied, or raises a Failure naming the first tensor that
    does not fit."""
    source_params, source_buffers = state_entries(source)
    target_params, target_buffers = state_entries(target)
    for entry in target_params + target_buffers:
        if isinstance(entry.tensor, (UninitializedParameter, UninitializedBuffer)):
            raise WeightsMismatch(f"weights by order: {yours}'s '{entry.name}' is still "
                                  "uninitialised after a forward pass")
    by_name = _same_names(source_params + source_buffers, target_params + target_buffers)
    if by_name is not None:  # the reference's own names: no order to guess
        count = len(target_params)
        params, buffers, regrouped, regrouped_buffers = (by_name[:count], by_name[count:],
                                                         False, False)
    else:
        params, regrouped = _pairs(source_params, target_params, "parameter", yours,
                                   reference)
        buffers, regrouped_buffers = _pairs(source_buffers, target_buffers, "buffer", yours,
                                            reference)
    with torch.no_grad():
        for s, t in params + buffers:
            try:
                t.tensor.copy_(s.tensor)
            except RuntimeError as exc:  # e.g. a tensor on the meta device
                raise WeightsMismatch(f"weights by order: cannot copy into {yours}'s "
                                      f"'{t.name}': {exc}") from None
    how = ("name" if by_name is not None else
           "order within each kind of layer: convs, then norms"
           if regrouped or regrouped_buffers else "registration order")
    return f"{len(params)} parameter and {len(buffers)} buffer tensors copied by {how}"


def randomize_norms(module: nn.Module, generator: torch.Generator) -> None:
    """Non-trivial BN statistics and affine parameters (fresh ones are the identity), so that
    a BN used wrongly or left out shows in the outputs."""
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, nn.modules.batchnorm._BatchNorm):
                n = sub.num_features
                sub.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                sub.bias.copy_(torch.randn(n, generator=generator) * 0.3)
                sub.running_mean.copy_(torch.randn(n, generator=generator) * 0.3)
                sub.running_var.copy_(torch.rand(n, generator=generator) + 0.5)

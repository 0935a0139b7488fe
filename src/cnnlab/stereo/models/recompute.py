"""Activations that autograd remakes in the backward pass instead of keeping them.

PSMNet's training step keeps ~2 GB for its backward pass at 256x512, batch 2 (bf16), most of
it 50 MB 3-D activations. Some are cheap to remake from tensors that are kept anyway: the
output of a batch norm + ReLU from the convolution output that batch norm's backward keeps,
the cost volume from the two views' small feature maps. Such a tensor carries a
``Recomputed`` recipe; inside ``keep_less_for_backward()`` an operation that saves it for
backward keeps the recipe instead, and the backward pass remakes the tensor once, when its
first user needs it, and drops it after its last. The remade values are the kept ones (bit
for bit in bf16 on the CPU, to one ulp in fp32). Other saved tensors are kept as autograd
keeps them, with its check that none was changed in place; double backward through the
context's graph is not supported (PSMNet's training never needs it).
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

_ATTRIBUTE = "_cnnlab_recomputed"
_state = threading.local()  # whether keep_less_for_backward is on, per thread (as the hooks)


class Recomputed:
    """How to remake one tensor, and the remade copy while backward users still need it."""

    __slots__ = ("cache", "make", "pending", "version")

    def __init__(self, tensor: torch.Tensor, make: Callable[[], torch.Tensor], pending: int = 0):
        self.make = make
        self.pending = pending  # users that will ask for it: saves packed, plus owners' own
        self.cache: torch.Tensor | None = None
        self.version = tensor._version  # the values make() gives (holding it would keep it)

    def take(self) -> torch.Tensor:
        """The tensor as it was made, remade if no earlier user remade it; dropped after its
        last user. (A change in place after a save does not matter: the save wanted these
        values, and gets them.)"""
        value = self.cache if self.cache is not None else self.make()
        self.pending -= 1
        self.cache = value if self.pending > 0 else None
        return value


def recompute_in_backward(tensor: torch.Tensor, make: Callable[[], torch.Tensor],
                          pending: int = 0) -> Recomputed:
    """Mark ``tensor`` as remade by ``make()`` when a backward pass needs it. What ``make``
    holds lives as long as the graph: tensors kept anyway, or small ones."""
    recipe = Recomputed(tensor, make, pending)
    setattr(tensor, _ATTRIBUTE, recipe)
    return recipe


def _pack(tensor: torch.Tensor) -> tuple[torch.Tensor, int] | Recomputed:
    recipe = getattr(tensor, _ATTRIBUTE, None)
    if recipe is None or tensor._version != recipe.version:  # changed in place: keep it
        counted = getattr(_state, "kept", None)
        if counted is not None:  # inside kept_bytes
            storage = tensor.untyped_storage()
            counted[storage.data_ptr()] = storage.nbytes()
        # detached (no reference cycle through its grad_fn, so an unused graph is freed),
        # with its version, for autograd's in-place check the hooks would otherwise skip
        return tensor.detach(), tensor._version
    recipe.pending += 1
    return recipe


def _unpack(packed: tuple[torch.Tensor, int] | Recomputed) -> torch.Tensor:
    if isinstance(packed, Recomputed):
        return packed.take()
    tensor, version = packed
    if tensor._version != version:
        raise RuntimeError(
            "one of the variables needed for gradient computation has been modified by an "
            f"inplace operation: {tuple(tensor.shape)} {tensor.dtype} is at version "
            f"{tensor._version}; expected version {version} instead")
    return tensor


def may_remake() -> bool:
    """Whether a forward pass now could remake anything: gradients on, and not while
    torch.compile traces (its graphs take the plain layers whole)."""
    return torch.is_grad_enabled() and not torch.compiler.is_compiling()


def remaking() -> bool:
    """Whether tensors made now are remade in backward: ``may_remake`` inside
    ``keep_less_for_backward``."""
    return getattr(_state, "on", False) and may_remake()


@contextmanager
def keep_less_for_backward() -> Iterator[None]:
    """Inside this context, autograd keeps recipes instead of the tensors marked with
    ``recompute_in_backward``, and ``ConvStack`` marks its batch norm + ReLU outputs
    (thread-local, as autograd's saved-tensor hooks are)."""
    previous = getattr(_state, "on", False)
    _state.on = True
    try:
        with torch.autograd.graph.saved_tensors_hooks(_pack, _unpack):
            yield
    finally:
        _state.on = previous


def kept_bytes(run: Callable[[], object], least: int = 0) -> int:
    """Bytes autograd keeps for the backward pass of what ``run()`` computes: each saved
    storage of ``least`` bytes or more, once; what recipes remake is not kept (the measure
    bench/ and the tests give)."""
    previous, _state.kept = getattr(_state, "kept", None), {}
    try:
        with torch.autograd.graph.saved_tensors_hooks(_pack, _unpack):
            run()
        return sum(n for n in _state.kept.values() if n >= least)
    finally:
        _state.kept = previous


class _BatchNormReLU(torch.autograd.Function):
    """relu(batch_norm(y)) in training mode, keeping y (which batch norm's backward needs
    anyway) and remaking the output from it when a user or this backward needs it."""

    @staticmethod
    def forward(ctx, y, weight, bias, running_mean, running_var, momentum, eps):
        out, mean, invstd = torch.native_batch_norm(y, weight, bias, running_mean,
                                                    running_var, True, momentum, eps)
        out = out.relu_()
        ctx.save_for_backward(y, weight, bias, mean, invstd)
        ctx.eps = eps
        node = weakref.ref(ctx)  # the recipe reads what ctx keeps, so it holds nothing itself:
        # autograd frees y after this backward, while a recipe lives as long as the graph

        def remake() -> torch.Tensor:
            owner = node()
            if owner is None:  # only a tensor kept past its own graph could get here
                raise RuntimeError("a batch norm + ReLU output was saved in a graph after its "
                                   "own graph was freed: compute it again")
            y, weight, bias, mean, invstd = owner.saved_tensors
            variance = invstd.pow(-2).sub_(eps)  # the batch's: eval mode remakes out
            return torch.native_batch_norm(y, weight, bias, mean, variance, False, 0.0,
                                           eps)[0].relu_()

        ctx.recipe = recompute_in_backward(out, remake, pending=1)  # 1: this backward
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        y, weight, _, mean, invstd = ctx.saved_tensors
        out = ctx.recipe.take()
        ctx.recipe.cache = None  # this backward is the last user: a save never unpacked
        # (its result unused, or a partial autograd.grad) must not keep the copy alive
        grad = torch.ops.aten.threshold_backward(grad, out, 0)
        del out
        wanted = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]]
        grad_y, grad_weight, grad_bias = torch.ops.aten.native_batch_norm_backward(
            grad, y, weight, None, None, mean, invstd, True, ctx.eps, wanted)
        return grad_y, grad_weight, grad_bias, None, None, None, None


def batch_norm_relu(y: torch.Tensor, bn: nn.BatchNorm2d | nn.BatchNorm3d) -> torch.Tensor:
    """``relu(bn(y))`` for a batch norm in training mode, its running statistics updated as
    ``bn`` does; where anything needs a gradient, the output is remade in backward instead of
    kept (inside ``keep_less_for_backward``)."""
    if not bn.training:
        raise ValueError("bn: batch_norm_relu is for a batch norm in training mode; in eval "
                         "mode call relu(bn(y))")
    if y.shape[0] * math.prod(y.shape[2:]) == 1:  # as F.batch_norm refuses it
        raise ValueError("Expected more than 1 value per channel when training, got input "
                         f"size {tuple(y.shape)}")
    parameters = [p for p in (bn.weight, bn.bias) if p is not None]
    if not (torch.is_grad_enabled() and any(t.requires_grad for t in (y, *parameters))):
        return F.relu(bn(y), inplace=True)  # no graph: nothing to keep or remake
    momentum = 0.0 if bn.momentum is None else bn.momentum
    if bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:  # a cumulative moving average, as nn.BatchNorm does
            momentum = 1.0 / float(bn.num_batches_tracked)
    return _BatchNormReLU.apply(y, bn.weight, bn.bias, bn.running_mean, bn.running_var,
                                momentum, bn.eps)

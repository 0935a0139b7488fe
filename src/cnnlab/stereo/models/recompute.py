"""Activations that autograd remakes in the backward pass instead of keeping them.

PSMNet's training step keeps ~2 GB for its backward pass at 256x512, batch 2 (bf16), most of
it 50 MB 3-D activations. Some are cheap to remake from tensors that are kept anyway: the
output of a batch norm + ReLU from the convolution output that batch norm's backward keeps,
the cost volume from the two views' small feature maps. Such a tensor carries a
``Recomputed`` recipe; inside ``keep_less_for_backward()`` an operation that saves it for
backward keeps the recipe instead, and the backward pass remakes the tensor once, when its
first user needs it, and drops it after its last. Outside the context everything is kept as
usual. The remade values are the kept ones (bit for bit in bf16, to one rounding in fp32).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
from torch import nn
from torch.autograd.function import once_differentiable

_ATTRIBUTE = "_cnnlab_recomputed"


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
    """Mark ``tensor`` as remade by ``make()`` when a backward pass needs it (``make`` must
    hold only tensors kept anyway: what it holds stays alive with the graph)."""
    recipe = Recomputed(tensor, make, pending)
    setattr(tensor, _ATTRIBUTE, recipe)
    return recipe


def _pack(tensor: torch.Tensor) -> torch.Tensor | Recomputed:
    recipe = getattr(tensor, _ATTRIBUTE, None)
    if recipe is None or tensor._version != recipe.version:  # changed in place: keep it
        return tensor
    recipe.pending += 1
    return recipe


def _unpack(packed: torch.Tensor | Recomputed) -> torch.Tensor:
    return packed.take() if isinstance(packed, Recomputed) else packed


def keep_less_for_backward() -> AbstractContextManager[None]:
    """Inside this context, autograd keeps recipes instead of the tensors marked with
    ``recompute_in_backward`` (thread-local, as autograd's saved-tensor hooks are)."""
    return torch.autograd.graph.saved_tensors_hooks(_pack, _unpack)


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
                raise RuntimeError("a batch norm + ReLU output was used in a graph after its "
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
        grad = torch.ops.aten.threshold_backward(grad, out, 0)
        del out
        wanted = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]]
        grad_y, grad_weight, grad_bias = torch.ops.aten.native_batch_norm_backward(
            grad, y, weight, None, None, mean, invstd, True, ctx.eps, wanted)
        return grad_y, grad_weight, grad_bias, None, None, None, None


def batch_norm_relu(y: torch.Tensor, bn: nn.modules.batchnorm._BatchNorm) -> torch.Tensor:
    """``relu(bn(y))`` for a batch norm in training mode (running statistics updated as
    ``bn`` does), whose output autograd remakes instead of keeping (``keep_less_for_backward``)."""
    momentum = 0.0 if bn.momentum is None else bn.momentum
    if bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:  # a cumulative moving average, as nn.BatchNorm does
            momentum = 1.0 / float(bn.num_batches_tracked)
    return _BatchNormReLU.apply(y, bn.weight, bn.bias, bn.running_mean, bn.running_var,
                                momentum, bn.eps)

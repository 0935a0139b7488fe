"""Activations remade in the backward pass (stereo.models.recompute): the same values,
statistics and gradients as keeping them, less memory kept, and no stale or leaked tensor."""

from __future__ import annotations

import contextlib
import gc
import weakref

import pytest
import torch
from torch import nn

from cnnlab.stereo.models import PSMNet, recompute
from cnnlab.stereo.models import psmnet as psmnet_module
from cnnlab.stereo.models.blocks import ConvStack, convbn, convbn_3d
from cnnlab.stereo.models.recompute import (
    batch_norm_relu,
    keep_less_for_backward,
    recompute_in_backward,
)


def _twins(make, dtype=torch.float64):
    """Two identical modules (same weights, same running statistics)."""
    torch.manual_seed(0)
    first = make().to(dtype)
    second = make().to(dtype)
    second.load_state_dict(first.state_dict())
    for module in (first, second):
        for bn in module.modules():
            if isinstance(bn, nn.modules.batchnorm._BatchNorm):
                bn.weight.data.uniform_(0.5, 1.5)
                bn.bias.data.uniform_(-0.5, 0.5)
    second.load_state_dict(first.state_dict())
    return first.train(), second.train()


@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("dims", [2, 3])
def test_batch_norm_relu_is_relu_of_batch_norm(dims, momentum):
    """Values, running statistics, the batch count and every gradient, in fp64."""
    make = (lambda: nn.BatchNorm2d(5, momentum=momentum)) if dims == 2 else \
        (lambda: nn.BatchNorm3d(5, momentum=momentum))
    ours, plain = _twins(make)
    shape = (3, 5, 6, 7) if dims == 2 else (2, 5, 3, 4, 6)
    torch.manual_seed(1)
    y = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(shape, dtype=torch.float64)
    for _ in range(2):  # twice: the cumulative average (momentum None) counts batches
        with keep_less_for_backward():
            out = batch_norm_relu(y, ours)
        expected = torch.relu(plain(y))
        torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)
        grads = torch.autograd.grad((out * weights).sum(), (y, ours.weight, ours.bias))
        wanted = torch.autograd.grad((expected * weights).sum(), (y, plain.weight, plain.bias))
        for got, want in zip(grads, wanted):
            torch.testing.assert_close(got, want, atol=1e-10, rtol=0)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(ours, name), getattr(plain, name), atol=1e-12, rtol=0)


def _stack():
    return ConvStack(convbn_3d(4, 6), nn.ReLU(inplace=True), convbn_3d(6, 6),
                     nn.ReLU(inplace=True), nn.Conv3d(6, 2, 3, padding=1))


@pytest.mark.parametrize("autocast", [False, True])
def test_a_conv_stack_trains_as_its_sequential_does(autocast):
    """ConvStack in training (batch norm + ReLU remade) against the same layers run as a
    plain Sequential: outputs and parameter gradients, fp32 (and bf16 autocast, to bf16's
    rounding)."""
    ours, plain = _twins(_stack, torch.float32)
    x = torch.randn(2, 4, 5, 6, 7)
    results = []
    for module, forward in ((ours, ours.forward), (plain, lambda t: nn.Sequential.forward(
            plain, t))):
        with keep_less_for_backward(), torch.autocast("cpu", torch.bfloat16, enabled=autocast):
            out = forward(x)
        out.float().square().sum().backward()
        results.append((out.float(), [p.grad for p in module.parameters()]))
    tolerance = 2e-2 if autocast else 1e-5
    torch.testing.assert_close(results[0][0], results[1][0], atol=tolerance, rtol=tolerance)
    for got, want in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(got, want, atol=tolerance, rtol=tolerance)


def _saved_storages(run, recipes: bool) -> set[int]:
    """Storages of the tensors autograd keeps while ``run()`` runs: with ``recipes`` through
    keep_less_for_backward's hooks (recipes are not counted), else everything."""
    kept: set[int] = set()

    def pack(tensor):
        packed = recompute._pack(tensor) if recipes else tensor
        if packed is tensor:
            kept.add(tensor.untyped_storage().data_ptr())
        return packed

    with torch.autograd.graph.saved_tensors_hooks(pack, recompute._unpack):
        run()
    return kept


def test_the_relu_outputs_are_not_kept_for_backward():
    """Inside keep_less_for_backward autograd keeps the convolution outputs but not the
    batch norm + ReLU outputs, which are remade; outside it keeps them as usual."""
    stack, _ = _twins(_stack, torch.float32)
    x = torch.randn(1, 4, 4, 5, 6)
    outputs = []  # held, so that no storage address is reused
    original = recompute._BatchNormReLU.apply

    def recording(*args):
        outputs.append(original(*args))
        return outputs[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(recompute._BatchNormReLU, "apply", recording)
        for recipes in (True, False):
            outputs.clear()
            kept = _saved_storages(lambda: stack(x), recipes)
            relus = {out.untyped_storage().data_ptr() for out in outputs}
            assert len(relus) == 2
            assert (not kept & relus) if recipes else relus <= kept


def test_a_tensor_changed_in_place_gives_the_gradients_of_what_was_saved():
    """Changed in place after a save: that save's user gets the values it saw (autograd
    would refuse); changed before any save: the tensor itself is kept. Either way the
    gradients are those of the same computation without the recipes."""
    bn = nn.BatchNorm2d(3).double().train()
    torch.manual_seed(0)
    y = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    for after_save in (True, False):
        with keep_less_for_backward():
            out = batch_norm_relu(y * 1, bn)
            if not after_save:
                out.mul_(2)
            product = out * w  # saves out, for w's gradient
            if after_save:
                out.add_(1)
        ours = torch.autograd.grad(product.sum(), (y, w))
        reference = torch.relu(nn.functional.batch_norm(y * 1, None, None, bn.weight,
                                                         bn.bias, training=True))
        reference = reference * (1 if after_save else 2) * w
        for got, want in zip(ours, torch.autograd.grad(reference.sum(), (y, w))):
            torch.testing.assert_close(got, want, atol=1e-12, rtol=0)


def test_the_graph_holds_nothing_after_backward():
    """After backward the convolution output a recipe remakes from is freed, though the
    graph (its output) is still referenced, as autograd frees what it saved."""
    bn = nn.BatchNorm2d(3).train()
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    with keep_less_for_backward():
        y = x * 2
        ref = weakref.ref(y)
        out = batch_norm_relu(y, bn) * 3
    del y
    out.sum().backward()
    gc.collect()
    assert ref() is None and out.grad_fn is not None


def test_retain_graph_remakes_for_every_backward():
    bn = nn.BatchNorm2d(3).train()
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    conv = nn.Conv2d(3, 3, 3, padding=1)
    with keep_less_for_backward():
        out = conv(batch_norm_relu(x * 1, bn)).square().sum()
    first = torch.autograd.grad(out, x, retain_graph=True)[0]
    second = torch.autograd.grad(out, x)[0]
    torch.testing.assert_close(first, second, atol=0, rtol=0)


def test_a_recipe_gives_what_its_tensor_held():
    x = torch.randn(4, 4, requires_grad=True)
    with keep_less_for_backward():
        y = x.exp()
        recompute_in_backward(y, lambda: x.detach().exp())
        out = (y * y).sum()
    out.backward()
    torch.testing.assert_close(x.grad, 2 * x.detach().exp() ** 2)


@pytest.mark.parametrize("variant", ["stackhourglass", "basic"])
def test_psmnet_trains_the_same_with_less_kept(variant):
    """A PSMNet training step in fp64: the recipes (remade ReLU outputs, cost volume) give
    the gradients of keeping everything."""
    results = []
    for hooks in (True, False):
        torch.manual_seed(0)
        model = PSMNet(variant=variant, max_disparity=16, blocks=(1, 1, 1, 1),
                       spp_pools=(8, 4)).double().train()
        left, right = (torch.randn(2, 3, 32, 48, dtype=torch.float64) for _ in range(2))
        with pytest.MonkeyPatch.context() as patch:
            if not hooks:
                patch.setattr(psmnet_module, "keep_less_for_backward", contextlib.nullcontext)
            out = model(left, right)["disparities"]
        sum(o.mean() for o in out).backward()
        results.append([p.grad.clone() for p in model.parameters()])
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, atol=1e-9, rtol=1e-7)


def test_a_conv_stack_in_eval_mode_is_its_sequential():
    stack = ConvStack(convbn(3, 4, 3, 1, 1), nn.ReLU(inplace=True)).eval()
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(stack(x), torch.relu(stack[0](x)))
    assert list(stack.state_dict()) == list(nn.Sequential(*stack).state_dict())

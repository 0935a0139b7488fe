"""Activations remade in the backward pass (stereo.models.recompute): the same values,
statistics and gradients as keeping them, less memory kept, autograd's checks intact, and no
stale or leaked tensor."""

from __future__ import annotations

import contextlib
import gc

import pytest
import torch
from torch import nn

from cnnlab.stereo.models import PSMNet, recompute
from cnnlab.stereo.models.blocks import ConvStack, convbn, convbn_3d
from cnnlab.stereo.models.recompute import (
    batch_norm_relu,
    keep_less_for_backward,
    kept_bytes,
    recompute_in_backward,
)


def _twins(make, dtype=torch.float64):
    """Two identical modules (same weights, same running statistics), batch norms' affine
    parameters away from 1 and 0."""
    torch.manual_seed(0)
    first = make().to(dtype)
    for bn in first.modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm) and bn.affine:
            bn.weight.data.uniform_(0.5, 1.5)
            bn.bias.data.uniform_(-0.5, 0.5)
    second = make().to(dtype)
    second.load_state_dict(first.state_dict())
    return first.train(), second.train()


@pytest.mark.parametrize("options", [{}, {"momentum": None}, {"affine": False},
                                     {"track_running_stats": False}])
@pytest.mark.parametrize("dims", [2, 3])
def test_batch_norm_relu_is_relu_of_batch_norm(dims, options):
    """Values, running statistics, the batch count and every gradient, in fp64, for every
    kind of batch norm."""
    kind = nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d
    ours, plain = _twins(lambda: kind(5, **options))
    shape = (3, 5, 6, 7) if dims == 2 else (2, 5, 3, 4, 6)
    torch.manual_seed(1)
    y = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(shape, dtype=torch.float64)
    inputs = (y, *(p for p in (ours.weight, ours.bias) if p is not None))
    references = (y, *(p for p in (plain.weight, plain.bias) if p is not None))
    for _ in range(2):  # twice: the cumulative average (momentum None) counts batches
        with keep_less_for_backward():
            out = batch_norm_relu(y, ours)
        expected = torch.relu(plain(y))
        torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)
        for got, want in zip(torch.autograd.grad((out * weights).sum(), inputs),
                             torch.autograd.grad((expected * weights).sum(), references)):
            torch.testing.assert_close(got, want, atol=1e-10, rtol=0)
    assert ours.state_dict().keys() == plain.state_dict().keys()
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value, atol=1e-12, rtol=0)


def test_batch_norm_relu_refuses_what_batch_norm_refuses():
    """One value per channel (BN's statistics would be NaN), and a batch norm in eval mode."""
    bn = nn.BatchNorm3d(4).train()
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        batch_norm_relu(torch.randn(1, 4, 1, 1, 1, requires_grad=True), bn)
    assert torch.isfinite(bn.running_var).all()
    with pytest.raises(ValueError, match="^bn: .*training mode"):
        batch_norm_relu(torch.randn(2, 4, 2, 2, 2), bn.eval())


def _stack():
    return ConvStack(convbn_3d(4, 6), nn.ReLU(inplace=True), convbn_3d(6, 6),
                     nn.ReLU(inplace=True), nn.Conv3d(6, 2, 3, padding=1))


@pytest.mark.parametrize("autocast", [False, True])
def test_a_conv_stack_trains_as_its_sequential_does(autocast):
    """ConvStack inside keep_less_for_backward (batch norm + ReLU remade) against the same
    layers as a plain Sequential: outputs and parameter gradients, fp32 (and bf16 autocast,
    to bf16's rounding)."""
    ours, plain = _twins(_stack, torch.float32)
    x = torch.randn(2, 4, 5, 6, 7)
    results = []
    for module, context in ((ours, keep_less_for_backward), (plain, torch.enable_grad)):
        with context(), torch.autocast("cpu", torch.bfloat16, enabled=autocast):
            out = module(x)
        out.float().square().sum().backward()
        results.append((out.float(), [p.grad for p in module.parameters()]))
    tolerance = 2e-2 if autocast else 1e-5
    torch.testing.assert_close(results[0][0], results[1][0], atol=tolerance, rtol=tolerance)
    for got, want in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(got, want, atol=tolerance, rtol=tolerance)


def test_the_relu_outputs_are_not_kept_for_backward():
    """Inside keep_less_for_backward the stack keeps its input and the two convolution
    outputs; as a plain Sequential it keeps the two ReLU outputs too (activations counted,
    not the batch norms' per-channel statistics)."""
    stack, _ = _twins(_stack, torch.float32)
    x = torch.randn(1, 4, 4, 5, 6)

    def inside():
        with keep_less_for_backward():
            return stack(x)

    relu_bytes = 1 * 6 * 4 * 5 * 6 * 4
    assert kept_bytes(inside, 1000) == kept_bytes(lambda: stack(x), 1000) - 2 * relu_bytes


def test_psmnet_trains_the_same_and_keeps_less():
    """A PSMNet training step in fp64, remaking (batch norm + ReLU outputs, the cost volume)
    against the plain layers: the same gradients and running statistics, less kept (0.76 of
    it here, measured; 0.65 for the published network at 256x512)."""
    grads, states, kept = [], [], []
    for remake in (True, False):
        torch.manual_seed(0)
        model = PSMNet(max_disparity=32, blocks=(1, 1, 1, 1), spp_pools=(8, 4)).double()
        left, right = (torch.randn(2, 3, 64, 96, dtype=torch.float64) for _ in range(2))
        with pytest.MonkeyPatch.context() as patch:
            if not remake:
                patch.setattr("cnnlab.stereo.models.psmnet.keep_less_for_backward",
                              torch.enable_grad)
            outputs = []
            kept.append(kept_bytes(lambda: outputs.append(model(left, right))))  # noqa: B023
        sum(o.mean() for o in outputs[0]["disparities"]).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
        states.append(model.state_dict())
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want, atol=1e-9, rtol=1e-7)
    for key, value in states[1].items():
        torch.testing.assert_close(states[0][key], value, atol=1e-12, rtol=0)
    assert kept[0] < 0.8 * kept[1]


def test_autograd_still_refuses_a_kept_tensor_changed_in_place():
    """The hooks keep autograd's check: a tensor kept as itself and then changed in place
    (a student's drop-in module doing x.mul_ after a convolution saved x) is refused."""
    conv = nn.Conv2d(3, 3, 3, padding=1)
    x = torch.randn(1, 3, 8, 8, requires_grad=True)
    with keep_less_for_backward():
        hidden = x * 2
        out = conv(hidden)
        hidden.mul_(0.5)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


def test_a_remade_tensor_changed_in_place_gives_the_gradients_of_what_was_saved():
    """Changed in place after a save: that save's user gets the values it saw; changed
    before any save: the tensor itself is kept. Either way the gradients are those of the
    same computation without the recipes."""
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


def _small_psmnet():
    torch.manual_seed(0)
    return PSMNet(max_disparity=16, blocks=(1, 1, 1, 1), spp_pools=(8, 4)).train()


def _tensor_count() -> int:
    gc.collect()
    return sum(issubclass(type(o), torch.Tensor) for o in gc.get_objects())


def test_a_forward_without_backward_frees_its_graph():
    """A training-mode forward whose outputs are dropped unused (a skipped step, a notebook
    looking at them) frees every activation: nothing held in a reference cycle (a saved
    tensor packed as itself holds its own grad_fn: 190 tensors were left here)."""
    model = _small_psmnet()
    left, right = torch.randn(2, 2, 3, 32, 48).unbind(0)
    model(left, right)  # warm-up: whatever a first call caches
    before = _tensor_count()
    out = model(left, right)
    assert _tensor_count() > before
    del out
    assert _tensor_count() == before


def test_a_frozen_feature_extractor_trains():
    """Features frozen (no graph through them): the 3-D stage trains, with the gradients of
    the plain layers."""
    grads = []
    for remake in (True, False):
        model = _small_psmnet()
        model.features.requires_grad_(False)
        left, right = torch.randn(2, 2, 3, 32, 48).unbind(0)
        with pytest.MonkeyPatch.context() as patch:
            if not remake:
                patch.setattr("cnnlab.stereo.models.psmnet.keep_less_for_backward",
                              torch.enable_grad)
            out = model(left, right)["disparities"]
        sum(o.mean() for o in out).backward()
        grads.append([p.grad for p in model.parameters() if p.requires_grad])
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_a_save_never_used_does_not_keep_the_remade_copy():
    """A save whose result never reaches the loss is never unpacked; once its owner's
    backward has run, the remade copy is dropped all the same."""
    bn = nn.BatchNorm2d(3).train()
    y = torch.randn(2, 3, 6, 6, requires_grad=True)
    w = torch.randn(2, 3, 6, 6, requires_grad=True)
    with keep_less_for_backward():
        out = batch_norm_relu(y * 1, bn)
        used = out * w  # saves out (a recipe)
        unused = out * w.detach().requires_grad_()  # saves it again, never unpacked
    used.sum().backward()
    assert getattr(out, recompute._ATTRIBUTE).cache is None and unused is not None


def test_retain_graph_remakes_for_every_backward():
    bn = nn.BatchNorm2d(3).train()
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    conv = nn.Conv2d(3, 3, 3, padding=1)
    with keep_less_for_backward():
        out = conv(batch_norm_relu(x * 1, bn)).square().sum()
    first = torch.autograd.grad(out, x, retain_graph=True)[0]
    second = torch.autograd.grad(out, x)[0]
    torch.testing.assert_close(first, second, atol=0, rtol=0)


def test_a_recipe_remakes_once_for_all_its_users():
    x = torch.randn(4, 4, requires_grad=True)
    made = []

    def make():
        made.append(1)
        return x.detach() * 2

    results = []

    def forward():
        with keep_less_for_backward():
            y = x * 2  # saves nothing
            recompute_in_backward(y, make)
            results.append((y * y).sum() + (y * 3).sin().sum())  # y * y saves it twice

    assert kept_bytes(forward) == (4 * 4) * 4 and made == []  # kept: y * 3 alone
    results[0].backward()  # d/dx (4 x^2 + sin 6x)
    torch.testing.assert_close(x.grad, 8 * x.detach() + 6 * torch.cos(6 * x.detach()))
    assert made == [1]


def test_outside_the_context_or_compiling_a_conv_stack_is_its_sequential(monkeypatch):
    """No remaking outside keep_less_for_backward, while torch.compile traces, in eval mode,
    or where a layer has hooks (they must run); state keys are a Sequential's."""
    calls = []
    original = recompute._BatchNormReLU.apply
    monkeypatch.setattr(recompute._BatchNormReLU, "apply",
                        lambda *args: calls.append(1) or original(*args))
    stack, _ = _twins(_stack, torch.float32)
    x = torch.randn(2, 4, 3, 4, 5)
    stack(x)
    assert calls == []
    with keep_less_for_backward():
        stack(x)
    assert len(calls) == 2
    with keep_less_for_backward(), monkeypatch.context() as patch:
        patch.setattr(torch.compiler, "is_compiling", lambda: True)
        stack(x)
    model, opened = _small_psmnet(), []
    for compiling in (True, False):  # PSMNet's training forward opens no hooks when traced
        with monkeypatch.context() as patch:
            patch.setattr(torch.compiler, "is_compiling", lambda c=compiling: c)
            patch.setattr("cnnlab.stereo.models.psmnet.keep_less_for_backward",
                          lambda c=compiling: opened.append(c) or contextlib.nullcontext())
            model(*torch.randn(2, 2, 3, 32, 48).unbind(0))
    assert opened == [False] and len(calls) == 2
    stack[1].register_forward_hook(lambda *args: None)
    with keep_less_for_backward():
        stack(x)
    assert len(calls) == 3  # the second pair only: the first ReLU has a hook
    plain = ConvStack(convbn(3, 4, 3, 1, 1), nn.ReLU(inplace=True)).eval()
    with keep_less_for_backward():
        torch.testing.assert_close(plain(torch.ones(1, 3, 8, 8)),
                                   torch.relu(plain[0](torch.ones(1, 3, 8, 8))))
    assert list(plain.state_dict()) == list(nn.Sequential(*plain).state_dict())

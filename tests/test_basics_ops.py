"""From-scratch operators against PyTorch on random shapes (values and gradients)."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnlab.basics.ops import (
    conv2d_unfold,
    corr2d,
    corr2d_1x1,
    corr2d_multi_in,
    corr2d_multi_in_out,
    corr2d_unfold,
    output_shape,
    output_size,
    pool2d,
    pool2d_unfold,
)

TOL = {"atol": 1e-5, "rtol": 1e-5}
FAST = settings(max_examples=40, deadline=None)


@st.composite
def conv_case(draw, max_size=9):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), max_size))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), max_size))
    seed = draw(st.integers(0, 2**16))
    return {"h": h, "w": w, "kernel": (kh, kw), "padding": (ph, pw), "stride": (sh, sw),
                "dilation": (dh, dw), "seed": seed}


@FAST
@given(conv_case())
def test_corr2d_loop_matches_conv2d_with_gradients(case):
    g = torch.Generator().manual_seed(case["seed"])
    x = torch.randn(case["h"], case["w"], generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(*case["kernel"], generator=g, dtype=torch.float64, requires_grad=True)
    opts = {key: case[key] for key in ("padding", "stride", "dilation")}
    ours = corr2d(x, k, **opts)
    reference = F.conv2d(x[None, None], k[None, None], **opts)[0, 0]
    torch.testing.assert_close(ours, reference, **TOL)
    grad_out = torch.randn_like(ours)
    ours_grads = torch.autograd.grad(ours, (x, k), grad_out)
    ref_grads = torch.autograd.grad(reference, (x, k), grad_out)
    for a, b in zip(ours_grads, ref_grads):
        torch.testing.assert_close(a, b, **TOL)


@FAST
@given(conv_case(max_size=12), st.integers(1, 3), st.integers(1, 4), st.integers(1, 2))
def test_conv2d_unfold_matches_conv2d(case, c_in, c_out, n):
    g = torch.Generator().manual_seed(case["seed"])
    x = torch.randn(n, c_in, case["h"], case["w"], generator=g, requires_grad=True)
    weight = torch.randn(c_out, c_in, *case["kernel"], generator=g, requires_grad=True)
    bias = torch.randn(c_out, generator=g, requires_grad=True)
    opts = {key: case[key] for key in ("padding", "stride", "dilation")}
    ours = conv2d_unfold(x, weight, bias, **opts)
    reference = F.conv2d(x, weight, bias, **opts)
    torch.testing.assert_close(ours, reference, **TOL)
    grad_out = torch.randn_like(ours)
    for a, b in zip(torch.autograd.grad(ours, (x, weight, bias), grad_out),
                    torch.autograd.grad(reference, (x, weight, bias), grad_out)):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@FAST
@given(st.integers(1, 3), st.integers(1, 3), st.integers(3, 8), st.integers(3, 8),
       st.integers(0, 1), st.integers(1, 2), st.integers(0, 999))
def test_multi_channel_loop_versions(c_in, c_out, h, w, padding, stride, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(c_in, h, w, generator=g)
    k = torch.randn(c_out, c_in, 2, 3, generator=g)
    reference = F.conv2d(x[None], k, padding=padding, stride=stride)[0]
    torch.testing.assert_close(corr2d_multi_in_out(x, k, padding=padding, stride=stride),
                               reference, **TOL)
    torch.testing.assert_close(corr2d_multi_in(x, k[0], padding=padding, stride=stride),
                               reference[0], **TOL)


@FAST
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 7), st.integers(1, 7),
       st.integers(0, 999))
def test_1x1_convolution_is_a_matrix_product(c_in, c_out, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(c_in, h, w, generator=g)
    k = torch.randn(c_out, c_in, 1, 1, generator=g)
    torch.testing.assert_close(corr2d_1x1(x, k), F.conv2d(x[None], k)[0], **TOL)
    torch.testing.assert_close(corr2d_1x1(x, k), corr2d_multi_in_out(x, k), **TOL)


@st.composite
def pool_case(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))  # PyTorch's limit
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h = draw(st.integers(max(1, kh - 2 * ph), 10))
    w = draw(st.integers(max(1, kw - 2 * pw), 10))
    return {"h": h, "w": w, "kernel": (kh, kw), "padding": (ph, pw), "stride": (sh, sw),
                "seed": draw(st.integers(0, 2**16))}


@FAST
@given(pool_case(), st.sampled_from(["max", "avg"]))
def test_pooling_matches_pytorch_with_gradients(case, mode):
    g = torch.Generator().manual_seed(case["seed"])
    x = torch.randn(2, 3, case["h"], case["w"], generator=g, dtype=torch.float64,
                    requires_grad=True)
    pool = F.max_pool2d if mode == "max" else F.avg_pool2d
    reference = pool(x, case["kernel"], case["stride"], case["padding"])
    vectorised = pool2d_unfold(x, case["kernel"], mode, case["padding"], case["stride"])
    loop = pool2d(x[1, 2], case["kernel"], mode, case["padding"], case["stride"])
    torch.testing.assert_close(vectorised, reference, **TOL)
    torch.testing.assert_close(loop, reference[1, 2], **TOL)
    grad_out = torch.randn_like(reference)
    torch.testing.assert_close(torch.autograd.grad(vectorised, x, grad_out)[0],
                               torch.autograd.grad(reference, x, grad_out)[0], **TOL)


def test_pool_default_stride_is_pool_size():
    x = torch.arange(16.0).reshape(4, 4)
    assert pool2d(x, 2).tolist() == [[5.0, 7.0], [13.0, 15.0]]
    assert pool2d(x, 2, "avg").tolist() == [[2.5, 4.5], [10.5, 12.5]]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.integers(1, 7), st.integers(0, 3), st.integers(1, 4),
       st.integers(1, 3))
def test_output_size_matches_layers(size, kernel, padding, stride, dilation):
    span = dilation * (kernel - 1) + 1
    if size + 2 * padding < span:
        with pytest.raises(ValueError, match="does not fit"):
            output_size(size, kernel, padding, stride, dilation)
        return
    x = torch.zeros(1, 1, size, size + 1)
    conv = nn.Conv2d(1, 1, kernel, stride, padding, dilation)
    expected = conv(x).shape[-2:]
    assert output_shape((size, size + 1), kernel, padding, stride, dilation) == tuple(expected)
    if padding <= kernel // 2:
        pooled = nn.MaxPool2d(kernel, stride, padding, dilation)(x).shape[-2:]
        assert output_shape((size, size + 1), kernel, padding, stride, dilation) == \
            tuple(pooled)


def test_course_examples():
    x = torch.arange(9.0).reshape(3, 3)
    k = torch.arange(4.0).reshape(2, 2)
    assert corr2d(x, k).tolist() == [[19.0, 25.0], [37.0, 43.0]]
    assert torch.equal(corr2d_unfold(x, k), corr2d(x, k))
    edges = torch.ones(6, 8)
    edges[:, 2:6] = 0
    y = corr2d(edges, torch.tensor([[1.0, -1.0]]))
    assert y[0].tolist() == [0, 1, 0, 0, 0, -1, 0]
    assert output_shape((8, 8), 3, padding=1) == (8, 8)
    assert output_shape((8, 8), (5, 3), padding=(2, 1)) == (8, 8)
    assert output_shape((8, 8), (3, 5), padding=(0, 1), stride=(3, 4)) == (2, 2)


def test_errors():
    with pytest.raises(ValueError, match="input channels"):
        conv2d_unfold(torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match="mode"):
        pool2d(torch.zeros(4, 4), 2, "median")

"""From-scratch operators against PyTorch on random shapes (values and gradients)."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnlab.basics.ops import (
    conv2d_unfold,
    conv_transpose2d,
    conv_transpose2d_zero_insert,
    corr2d,
    corr2d_1x1,
    corr2d_multi_in,
    corr2d_multi_in_out,
    corr2d_unfold,
    insert_zeros,
    output_shape,
    output_size,
    pool2d,
    pool2d_unfold,
    softmax_pool2d,
    trans_conv2d,
    transposed_output_shape,
    transposed_output_size,
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


# ------------------------------------------------------------- transposed convolution

EXACT = {"atol": 1e-10, "rtol": 0.0}


@st.composite
def transposed_case(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    oph = draw(st.integers(0, max(sh, dh) - 1))
    opw = draw(st.integers(0, max(sw, dw) - 1))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    # any padding that leaves at least one output pixel, some of it beyond the kernel's reach
    ph = draw(st.integers(0, ((h - 1) * sh + dh * (kh - 1) + oph) // 2))
    pw = draw(st.integers(0, ((w - 1) * sw + dw * (kw - 1) + opw) // 2))
    return {"h": h, "w": w, "kernel": (kh, kw), "stride": (sh, sw), "padding": (ph, pw),
            "output_padding": (oph, opw), "dilation": (dh, dw),
            "c_in": draw(st.integers(1, 3)), "c_out": draw(st.integers(1, 3)),
            "n": draw(st.integers(1, 2)), "seed": draw(st.integers(0, 2**16))}


@FAST
@given(transposed_case())
def test_conv_transpose2d_matches_pytorch_with_gradients(case):
    g = torch.Generator().manual_seed(case["seed"])
    x = torch.randn(case["n"], case["c_in"], case["h"], case["w"], generator=g,
                    dtype=torch.float64, requires_grad=True)
    weight = torch.randn(case["c_in"], case["c_out"], *case["kernel"], generator=g,
                         dtype=torch.float64, requires_grad=True)
    bias = torch.randn(case["c_out"], generator=g, dtype=torch.float64, requires_grad=True)
    opts = {key: case[key] for key in ("stride", "padding", "output_padding", "dilation")}
    reference = F.conv_transpose2d(x, weight, bias, **opts)
    assert reference.shape[-2:] == transposed_output_shape((case["h"], case["w"]),
                                                           case["kernel"], **opts)
    grad_out = torch.randn_like(reference)
    ref_grads = torch.autograd.grad(reference, (x, weight, bias), grad_out)
    for ours in (conv_transpose2d(x, weight, bias, **opts),
                 conv_transpose2d_zero_insert(x, weight, bias, **opts)):
        torch.testing.assert_close(ours, reference, **EXACT)
        for a, b in zip(torch.autograd.grad(ours, (x, weight, bias), grad_out), ref_grads):
            torch.testing.assert_close(a, b, **EXACT)


@pytest.mark.parametrize("c_in, c_out, kernel, stride, padding, output_padding, dilation", [
    (3, 5, (3, 2), 2, 1, 1, 1),
    (2, 4, 4, 2, 1, 0, 1),
    (4, 1, (2, 5), (3, 1), (0, 2), (2, 0), 1),
    (1, 3, 3, 1, 2, 1, 2),
])
def test_conv_transpose2d_matches_the_module(c_in, c_out, kernel, stride, padding,
                                             output_padding, dilation):
    torch.manual_seed(0)
    layer = nn.ConvTranspose2d(c_in, c_out, kernel, stride, padding, output_padding,
                               dilation=dilation).double()
    x = torch.randn(3, c_in, 5, 6, dtype=torch.float64)
    with torch.no_grad():
        expected = layer(x)
        for ours in (conv_transpose2d, conv_transpose2d_zero_insert):
            torch.testing.assert_close(
                ours(x, layer.weight, layer.bias, stride, padding, output_padding, dilation),
                expected, **EXACT)


def test_trans_conv2d_course_example_and_stride():
    x = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    assert trans_conv2d(x, x).tolist() == [[0, 0, 1], [0, 4, 6], [4, 12, 9]]
    g = torch.Generator().manual_seed(0)
    image = torch.randn(5, 4, generator=g, dtype=torch.float64)
    kernel = torch.randn(3, 4, generator=g, dtype=torch.float64)
    for stride, padding in ((1, 0), (2, 1), ((3, 2), (2, 0))):
        torch.testing.assert_close(
            trans_conv2d(image, kernel, stride, padding),
            F.conv_transpose2d(image[None, None], kernel[None, None], stride=stride,
                               padding=padding)[0, 0], **EXACT)


def test_zero_insertion_is_stride_one_over_s():
    x = torch.arange(1.0, 5.0).reshape(1, 1, 2, 2)
    assert insert_zeros(x, 2)[0, 0].tolist() == [[1, 0, 2], [0, 0, 0], [3, 0, 4]]
    assert insert_zeros(x, (1, 3))[0, 0].tolist() == [[1, 0, 0, 2], [3, 0, 0, 4]]
    # a stride-s convolution after a stride-s transposed one with a 1x1 kernel is the identity
    up = conv_transpose2d(x, torch.ones(1, 1, 1, 1), stride=3)
    assert torch.equal(conv2d_unfold(up, torch.ones(1, 1, 1, 1), stride=3), x)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 9), st.integers(1, 5), st.integers(0, 3), st.integers(1, 3),
       st.integers(1, 2), st.integers(0, 2))
def test_transposed_output_size_matches_the_module(size, kernel, padding, stride, dilation,
                                                   output_padding):
    expected = (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
    if output_padding >= max(stride, dilation) or expected < 1:
        with pytest.raises(ValueError, match="output_padding|padding"):
            transposed_output_size(size, kernel, padding, stride, dilation, output_padding)
        return
    layer = nn.ConvTranspose2d(1, 1, kernel, stride, padding, output_padding,
                               dilation=dilation)
    shape = layer(torch.zeros(1, 1, size, size + 1)).shape[-2:]
    assert transposed_output_shape((size, size + 1), kernel, padding, stride, dilation,
                                   output_padding) == tuple(shape)


@pytest.mark.parametrize("options, message", [
    ({"stride": 2, "output_padding": 2}, "output_padding must be smaller"),
    ({"output_padding": 1}, "output_padding must be smaller"),
    ({"stride": 0}, "stride must be >= 1"),
    ({"dilation": (1, 0)}, "dilation must be >= 1"),
    ({"padding": -1}, "padding must be >= 0"),
    ({"padding": 4}, "padding=4 leaves no output"),
])
def test_transposed_convolution_refuses_bad_arguments(options, message):
    x, weight = torch.zeros(1, 2, 3, 3), torch.zeros(2, 1, 2, 2)
    for op in (conv_transpose2d, conv_transpose2d_zero_insert):
        with pytest.raises(ValueError, match=message):
            op(x, weight, **options)
    with pytest.raises(ValueError, match="input channels"):
        conv_transpose2d(x, torch.zeros(3, 2, 2, 2))
    with pytest.raises(ValueError, match="bias"):
        conv_transpose2d(x, weight, torch.zeros(2))
    with pytest.raises(ValueError, match="x must be"):
        conv_transpose2d(x[0], weight)


# ---------------------------------------------------------------------- softmax pooling

@FAST
@given(pool_case())
def test_softmax_pool2d_limits_are_max_and_average_pooling(case):
    g = torch.Generator().manual_seed(case["seed"])
    shape = (2, 3, case["h"], case["w"])
    opts = {"stride": case["stride"], "padding": case["padding"]}
    # distinct integers: neighbours differ by at least 1, so exp(-1 / 1e-4) is 0
    spread = torch.randperm(2 * 3 * case["h"] * case["w"], generator=g).reshape(shape).double()
    torch.testing.assert_close(softmax_pool2d(spread, case["kernel"], 1e-4, **opts),
                               F.max_pool2d(spread, case["kernel"], **opts),
                               atol=1e-6, rtol=0.0)
    # values in [0, 1): the weights exp(x / 1e6) differ from equal by under 1e-6
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    torch.testing.assert_close(softmax_pool2d(x, case["kernel"], 1e6, **opts),
                               F.avg_pool2d(x, case["kernel"], **opts,
                                            count_include_pad=False), atol=1e-6, rtol=0.0)
    if case["padding"] == (0, 0):
        torch.testing.assert_close(softmax_pool2d(x, case["kernel"], 1e6, **opts),
                                   F.avg_pool2d(x, case["kernel"], **opts),
                                   atol=1e-6, rtol=0.0)
    between = softmax_pool2d(x, case["kernel"], 0.3, **opts)
    assert (between <= F.max_pool2d(x, case["kernel"], **opts) + 1e-12).all()


def test_softmax_pool2d_gradients():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: softmax_pool2d(t, 2, 0.7, stride=1, padding=1),
                                    (x,))
    assert torch.autograd.gradcheck(lambda t: softmax_pool2d(t, (2, 3), 3.0), (x,))


def test_softmax_pool2d_is_stable_for_large_values():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 6, 6, generator=g, dtype=torch.float64)
    shifted = softmax_pool2d(x + 1e4, 3, 1.0, stride=1)
    assert torch.isfinite(shifted).all()
    torch.testing.assert_close(shifted - 1e4, softmax_pool2d(x, 3, 1.0, stride=1),
                               atol=1e-9, rtol=0.0)
    large = 1e4 * torch.randn(1, 1, 8, 8, generator=g)
    assert torch.isfinite(softmax_pool2d(large, 2, 0.5)).all()  # float32: exp(1e4) overflows


def test_softmax_pool2d_shapes_and_errors():
    x = torch.arange(16.0).reshape(4, 4)
    assert softmax_pool2d(x, 2).shape == (2, 2)
    assert softmax_pool2d(x[None, None].expand(2, 3, 4, 4), 3, stride=1).shape == (2, 3, 2, 2)
    for temperature in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="temperature"):
            softmax_pool2d(x, 2, temperature)
    with pytest.raises(ValueError, match="padding"):
        softmax_pool2d(x, 2, padding=2)

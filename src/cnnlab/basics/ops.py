"""From-scratch 2-D cross-correlation, convolution layers, transposed convolution and pooling.

Two families, checked against PyTorch in the tests: loop versions that follow the course's
definitions one element at a time, and vectorised versions that gather every window at once
with ``Tensor.unfold`` (im2col) and reduce with one matrix product. No ``torch.nn.functional``
convolution or pooling is used here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

Pair = int | tuple[int, int]


def _pair(value: Pair) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def output_size(size: int, kernel: int, padding: int = 0, stride: int = 1, dilation: int = 1
                ) -> int:
    """floor((size + 2p - d(k-1) - 1) / s) + 1; an error when the window does not fit."""
    if kernel < 1 or stride < 1 or dilation < 1 or padding < 0:
        raise ValueError(f"invalid kernel={kernel}, stride={stride}, dilation={dilation}, "
                         f"padding={padding}")
    span = dilation * (kernel - 1) + 1
    if size + 2 * padding < span:
        raise ValueError(f"a window of {span} does not fit an input of {size} "
                         f"padded by {padding}")
    return (size + 2 * padding - span) // stride + 1


def output_shape(size: Pair, kernel: Pair, padding: Pair = 0, stride: Pair = 1,
                 dilation: Pair = 1) -> tuple[int, int]:
    """(H, W) of a convolution or pooling output."""
    return tuple(output_size(*args) for args in zip(_pair(size), _pair(kernel), _pair(padding),
                                                    _pair(stride), _pair(dilation)))


def transposed_output_size(size: int, kernel: int, padding: int = 0, stride: int = 1,
                           dilation: int = 1, output_padding: int = 0) -> int:
    """(size - 1)s - 2p + d(k-1) + output_padding + 1: the size ``output_size`` maps back from.

    ``output_padding`` picks one of the ``stride`` input sizes that share an output size, so
    PyTorch requires it below the stride or the dilation; errors name the argument.
    """
    for name, value, least in (("kernel", kernel, 1), ("stride", stride, 1),
                               ("dilation", dilation, 1), ("padding", padding, 0),
                               ("output_padding", output_padding, 0)):
        if value < least:
            raise ValueError(f"{name} must be >= {least}, got {value}")
    if output_padding >= stride and output_padding >= dilation:
        raise ValueError(f"output_padding must be smaller than stride or dilation, got "
                         f"output_padding={output_padding}, stride={stride}, "
                         f"dilation={dilation}")
    out = (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
    if size < 1 or out < 1:
        raise ValueError(f"padding={padding} leaves no output from an input of {size} "
                         f"(output size {out})")
    return out


def transposed_output_shape(size: Pair, kernel: Pair, padding: Pair = 0, stride: Pair = 1,
                            dilation: Pair = 1, output_padding: Pair = 0) -> tuple[int, int]:
    """(H, W) of a transposed convolution output."""
    return tuple(transposed_output_size(*args) for args in zip(
        _pair(size), _pair(kernel), _pair(padding), _pair(stride), _pair(dilation),
        _pair(output_padding)))


def pad2d(x: torch.Tensor, padding: Pair, value: float = 0.0) -> torch.Tensor:
    """Pad the last two dimensions by (ph, pw) on each side with ``value``."""
    ph, pw = _pair(padding)
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (pw, pw, ph, ph), value=value)


# ----------------------------------------------------------------------- loop versions

def corr2d(x: torch.Tensor, kernel: torch.Tensor, padding: Pair = 0, stride: Pair = 1,
           dilation: Pair = 1) -> torch.Tensor:
    """(H, W) * (kh, kw) -> 2-D cross-correlation, one output element per loop step."""
    kh, kw = kernel.shape
    (sh, sw), (dh, dw) = _pair(stride), _pair(dilation)
    oh, ow = output_shape(x.shape, (kh, kw), padding, stride, dilation)
    x = pad2d(x, padding)
    rows = []
    for i in range(oh):
        row = []
        for j in range(ow):
            window = x[i * sh: i * sh + dh * (kh - 1) + 1: dh,
                       j * sw: j * sw + dw * (kw - 1) + 1: dw]
            row.append((window * kernel).sum())
        rows.append(torch.stack(row))
    return torch.stack(rows)


def corr2d_multi_in(x: torch.Tensor, kernel: torch.Tensor, **options) -> torch.Tensor:
    """(C, H, W) * (C, kh, kw) -> (oh, ow): correlate each channel and sum."""
    if x.shape[0] != kernel.shape[0]:
        raise ValueError(f"{x.shape[0]} input channels but the kernel has {kernel.shape[0]}")
    return sum(corr2d(xc, kc, **options) for xc, kc in zip(x, kernel))


def corr2d_multi_in_out(x: torch.Tensor, kernel: torch.Tensor, **options) -> torch.Tensor:
    """(C, H, W) * (O, C, kh, kw) -> (O, oh, ow): one multi-input correlation per output."""
    return torch.stack([corr2d_multi_in(x, k, **options) for k in kernel])


def corr2d_1x1(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """(C, H, W) * (O, C, 1, 1) -> (O, H, W) as one matrix product over channels."""
    channels, height, width = x.shape
    out_channels = kernel.shape[0]
    return (kernel.reshape(out_channels, channels) @ x.reshape(channels, height * width)
            ).reshape(out_channels, height, width)


def pool2d(x: torch.Tensor, pool_size: Pair, mode: str = "max", padding: Pair = 0,
           stride: Pair | None = None) -> torch.Tensor:
    """(H, W) max or average pooling, loop version; stride defaults to the pool size.

    Padding follows PyTorch: -inf for max, zeros counted in the average for avg.
    """
    if mode not in ("max", "avg"):
        raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
    ph, pw = _pair(pool_size)
    sh, sw = _pair(stride if stride is not None else pool_size)
    oh, ow = output_shape(x.shape, (ph, pw), padding, (sh, sw))
    x = pad2d(x, padding, float("-inf") if mode == "max" else 0.0)
    rows = []
    for i in range(oh):
        row = []
        for j in range(ow):
            window = x[i * sh: i * sh + ph, j * sw: j * sw + pw]
            row.append(window.max() if mode == "max" else window.mean())
        rows.append(torch.stack(row))
    return torch.stack(rows)


def trans_conv2d(x: torch.Tensor, kernel: torch.Tensor, stride: Pair = 1, padding: Pair = 0
                 ) -> torch.Tensor:
    """(H, W) * (kh, kw) -> transposed convolution, as the course writes it: each input element
    adds its value times the kernel into the output, the copies ``stride`` apart, and
    ``padding`` is cropped from each side of the result."""
    kh, kw = kernel.shape
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    transposed_output_shape(x.shape, (kh, kw), padding, stride)  # validates
    y = x.new_zeros((x.shape[0] - 1) * sh + kh, (x.shape[1] - 1) * sw + kw)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            y[i * sh: i * sh + kh, j * sw: j * sw + kw] += x[i, j] * kernel
    return y[ph: y.shape[0] - ph, pw: y.shape[1] - pw]


def _check_transposed(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
                      ) -> None:
    if x.dim() != 4:
        raise ValueError(f"x must be (N, C_in, H, W), got shape {tuple(x.shape)}")
    if weight.dim() != 4:
        raise ValueError(f"weight must be (C_in, C_out, kh, kw), got shape "
                         f"{tuple(weight.shape)}")
    if x.shape[1] != weight.shape[0]:
        raise ValueError(f"{x.shape[1]} input channels but the weight (C_in, C_out, kh, kw) "
                         f"has {weight.shape[0]}")
    if bias is not None and tuple(bias.shape) != (weight.shape[1],):
        raise ValueError(f"bias must be ({weight.shape[1]},), got shape {tuple(bias.shape)}")


def conv_transpose2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                     stride: Pair = 1, padding: Pair = 0, output_padding: Pair = 0,
                     dilation: Pair = 1) -> torch.Tensor:
    """(N, Cin, H, W) * (Cin, Cout, kh, kw) -> (N, Cout, oh, ow), loop over input pixels.

    The scatter-add definition: each input pixel adds its values times the (dilated) kernel
    into the output at ``stride`` spacing; ``padding`` is then cropped from each side, and
    ``output_padding`` keeps that many more rows/columns at the bottom/right.
    """
    _check_transposed(x, weight, bias)
    (kh, kw), (sh, sw), (dh, dw) = weight.shape[-2:], _pair(stride), _pair(dilation)
    ph, pw = _pair(padding)
    oh, ow = transposed_output_shape(x.shape[-2:], (kh, kw), padding, stride, dilation,
                                     output_padding)
    full = x.new_zeros(x.shape[0], weight.shape[1], oh + 2 * ph, ow + 2 * pw)
    for i in range(x.shape[2]):
        for j in range(x.shape[3]):
            # (N, Cin) . (Cin, Cout, kh, kw) -> (N, Cout, kh, kw): this pixel's stamp
            stamp = torch.tensordot(x[:, :, i, j], weight, dims=1)
            full[:, :, i * sh: i * sh + dh * (kh - 1) + 1: dh,
                 j * sw: j * sw + dw * (kw - 1) + 1: dw] += stamp
    out = full[:, :, ph: ph + oh, pw: pw + ow]
    return out if bias is None else out + bias.view(1, -1, 1, 1)


class Conv2D(nn.Module):
    """A learnable single-channel convolution layer built on the loop ``corr2d``."""

    def __init__(self, kernel_size: Pair, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(_pair(kernel_size)))
        self.bias = nn.Parameter(torch.zeros(1)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = corr2d(x, self.weight)
        return out if self.bias is None else out + self.bias


# ----------------------------------------------------------------- vectorised versions

def windows(x: torch.Tensor, kernel: Pair, padding: Pair = 0, stride: Pair = 1,
            dilation: Pair = 1, pad_value: float = 0.0) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, oh, ow, kh, kw) view of every window (im2col without copying)."""
    (kh, kw), (sh, sw), (dh, dw) = _pair(kernel), _pair(stride), _pair(dilation)
    output_shape(x.shape[-2:], (kh, kw), padding, stride, dilation)  # validates
    x = pad2d(x, padding, pad_value)
    spans = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    patches = x.unfold(2, spans[0], sh).unfold(3, spans[1], sw)
    return patches[..., ::dh, ::dw]


def conv2d_unfold(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  padding: Pair = 0, stride: Pair = 1, dilation: Pair = 1) -> torch.Tensor:
    """(N, C, H, W) * (O, C, kh, kw) -> (N, O, oh, ow): im2col and one matrix product."""
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"{x.shape[1]} input channels but the weight has {weight.shape[1]}")
    patches = windows(x, weight.shape[-2:], padding, stride, dilation)
    out = torch.einsum("ncijkl,ockl->noij", patches, weight)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def corr2d_unfold(x: torch.Tensor, kernel: torch.Tensor, **options) -> torch.Tensor:
    """Vectorised ``corr2d``: (H, W) * (kh, kw) -> (oh, ow)."""
    return conv2d_unfold(x[None, None], kernel[None, None], **options)[0, 0]


def pool2d_unfold(x: torch.Tensor, pool_size: Pair, mode: str = "max", padding: Pair = 0,
                  stride: Pair | None = None) -> torch.Tensor:
    """Vectorised pooling of (N, C, H, W) or (H, W); same padding rules as ``pool2d``."""
    if mode not in ("max", "avg"):
        raise ValueError(f"mode must be 'max' or 'avg', got {mode!r}")
    squeeze = x.dim() == 2
    x4 = x[None, None] if squeeze else x
    pad_value = float("-inf") if mode == "max" else 0.0
    patches = windows(x4, pool_size, padding, stride if stride is not None else pool_size,
                      pad_value=pad_value)
    out = patches.amax(dim=(-2, -1)) if mode == "max" else patches.mean(dim=(-2, -1))
    return out[0, 0] if squeeze else out


def insert_zeros(x: torch.Tensor, stride: Pair) -> torch.Tensor:
    """(..., H, W) -> (..., (H-1)sh + 1, (W-1)sw + 1) with stride - 1 zeros between pixels."""
    sh, sw = _pair(stride)
    if sh < 1 or sw < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    height, width = x.shape[-2:]
    out = x.new_zeros(*x.shape[:-2], (height - 1) * sh + 1, (width - 1) * sw + 1)
    out[..., ::sh, ::sw] = x
    return out


def conv_transpose2d_zero_insert(x: torch.Tensor, weight: torch.Tensor,
                                 bias: torch.Tensor | None = None, stride: Pair = 1,
                                 padding: Pair = 0, output_padding: Pair = 0,
                                 dilation: Pair = 1) -> torch.Tensor:
    """``conv_transpose2d`` as an ordinary stride-1 convolution ("stride 1/s").

    Insert stride - 1 zeros between input pixels, pad by d(k-1) - p (plus output_padding at
    the bottom/right), then correlate with the kernel flipped and its channel axes swapped.
    """
    _check_transposed(x, weight, bias)
    (kh, kw), (dh, dw) = weight.shape[-2:], _pair(dilation)
    (ph, pw), (oph, opw) = _pair(padding), _pair(output_padding)
    transposed_output_shape(x.shape[-2:], (kh, kw), padding, stride, dilation,
                            output_padding)  # validates
    top, left = dh * (kh - 1) - ph, dw * (kw - 1) - pw
    # a negative amount crops: padding beyond the kernel's reach removes whole rows
    dilated = F.pad(insert_zeros(x, stride), (left, left + opw, top, top + oph))
    kernel = weight.flip(-2, -1).transpose(0, 1)
    return conv2d_unfold(dilated, kernel, bias, dilation=dilation)


def softmax_pool2d(x: torch.Tensor, pool_size: Pair, temperature: float = 1.0,
                   stride: Pair | None = None, padding: Pair = 0) -> torch.Tensor:
    """(N, C, H, W) or (H, W): per window, the mean of the values weighted by
    softmax(values / temperature); max pooling as T -> 0, average pooling as T -> inf.

    Padded cells get no weight (as in max pooling, and ``avg_pool2d(count_include_pad=False)``).
    The window max is subtracted before ``exp`` so that large values cannot overflow.
    """
    if not temperature > 0:  # also refuses nan
        raise ValueError(f"temperature must be > 0, got {temperature}")
    (kh, kw), (ph, pw) = _pair(pool_size), _pair(padding)
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(f"padding must be at most half the pool size, got padding={padding} "
                         f"for pool_size={pool_size}")
    squeeze = x.dim() == 2
    x4 = x[None, None] if squeeze else x
    stride = stride if stride is not None else pool_size
    values = windows(x4, pool_size, padding, stride).flatten(-2)
    logits = windows(x4 / temperature, pool_size, padding, stride,
                     pad_value=float("-inf")).flatten(-2)
    # softmax does not change with the shift, so the max needs no gradient
    weights = (logits - logits.amax(-1, keepdim=True).detach()).exp()
    out = (weights * values).sum(-1) / weights.sum(-1)
    return out[0, 0] if squeeze else out

"""From-scratch 2-D cross-correlation, convolution layers and pooling.

Two families, checked against PyTorch in the tests: loop versions that follow the course's
definitions one output element at a time, and vectorised versions that gather every window at
once with ``Tensor.unfold`` (im2col) and reduce with one matrix product. No
``torch.nn.functional`` convolution or pooling is used here.
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

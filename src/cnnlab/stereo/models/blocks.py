"""Conv+BN blocks of PSMNet (2-D and 3-D) and the dilated residual block, with BN folding."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from cnnlab.stereo.models.recompute import batch_norm_relu, remaking


def _layout_of(weight: torch.Tensor) -> torch.memory_format:
    if weight.dim() == 5 and weight.is_contiguous(memory_format=torch.channels_last_3d):
        return torch.channels_last_3d
    if weight.dim() == 4 and weight.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


class ConvBN(nn.Module):
    """Conv (2-D, 3-D or transposed 3-D, no bias) followed by batch norm; ``fuse`` folds the BN.

    Folding BN into the convolution at inference removes one pass over every activation, which
    matters for PSMNet's large 3-D cost volumes.
    """

    def __init__(self, conv: nn.Module, channels: int, dims: int):
        super().__init__()
        self.conv = conv
        self.bn = nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm3d(channels)
        self.fused: nn.Module | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None and not self.training:
            return self.fused(x)
        return self.bn(self.conv(x))

    @torch.no_grad()
    def fuse(self) -> None:
        transpose = isinstance(self.conv, nn.ConvTranspose3d)
        self.fused = fuse_conv_bn_eval(self.conv.eval(), self.bn.eval(), transpose=transpose)
        layout = _layout_of(self.conv.weight)  # keep channels_last(_3d) weights
        self.fused.weight.data = self.fused.weight.data.contiguous(memory_format=layout)

    def train(self, mode: bool = True):
        if mode:
            self.fused = None  # weights will change; a stale fusion must not survive
        return super().train(mode)


class ConvStack(nn.Sequential):
    """``nn.Sequential`` (same children, same state keys) whose conv+BN followed by ReLU runs,
    in training inside ``recompute.keep_less_for_backward``, as one batch norm + ReLU whose
    output the backward pass remakes from the convolution's output instead of keeping it
    (``recompute.batch_norm_relu``): less memory kept for backward, the same results.
    Elsewhere, or where a layer has hooks, it is the plain Sequential."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and remaking()):
            return super().forward(x)
        layers = list(self)
        skip = False
        for layer, following in zip(layers, [*layers[1:], None]):
            if skip:
                skip = False
            elif _fusable(layer, following):
                x = batch_norm_relu(layer.conv(x), layer.bn)
                skip = True
            else:
                x = layer(x)
        return x


def _fusable(layer: nn.Module, following: nn.Module | None) -> bool:
    """A ConvBN (in training) and a ReLU, exactly those classes, none with hooks: running
    them as one skips their ``__call__``, so nothing else must depend on it."""
    if type(layer) is not ConvBN or type(following) is not nn.ReLU:
        return False
    if type(layer.bn) not in (nn.BatchNorm2d, nn.BatchNorm3d) or not layer.bn.training:
        return False
    return not any(module._forward_hooks or module._forward_pre_hooks
                   for module in (layer, layer.conv, layer.bn, following))


def convbn_relu(n_in: int, n_out: int, kernel: int, stride: int = 1, padding: int = 0,
                dilation: int = 1) -> ConvStack:
    """2-D conv+BN+ReLU (state keys "0.conv.weight", "0.bn.*", as a Sequential's)."""
    return ConvStack(convbn(n_in, n_out, kernel, stride, padding, dilation), nn.ReLU(inplace=True))


def convbn_relu_3d(n_in: int, n_out: int, stride: int = 1) -> ConvStack:
    """3x3x3 conv+BN+ReLU, padding 1 (state keys as a Sequential's)."""
    return ConvStack(convbn_3d(n_in, n_out, stride), nn.ReLU(inplace=True))


def convbn(n_in: int, n_out: int, kernel: int, stride: int = 1, padding: int = 0,
           dilation: int = 1) -> ConvBN:
    """2-D conv+BN; as in the published code, a dilated conv pads by its dilation."""
    pad = dilation if dilation > 1 else padding
    return ConvBN(nn.Conv2d(n_in, n_out, kernel, stride, pad, dilation, bias=False), n_out, 2)


def convbn_3d(n_in: int, n_out: int, stride: int = 1) -> ConvBN:
    """3x3x3 conv+BN with padding 1."""
    return ConvBN(nn.Conv3d(n_in, n_out, 3, stride, 1, bias=False), n_out, 3)


def deconvbn_3d(n_in: int, n_out: int) -> ConvBN:
    """3x3x3 transposed conv (stride 2, doubles every dimension) + BN."""
    conv = nn.ConvTranspose3d(n_in, n_out, 3, stride=2, padding=1, output_padding=1, bias=False)
    return ConvBN(conv, n_out, 3)


def _shifted_sum(z: torch.Tensor, taps: int, axis: int) -> torch.Tensor:
    """Sum over dim ``taps`` (size 3) of ``z``, tap k shifted by k - 1 along ``axis`` of the
    result (which lacks dim ``taps``), zero beyond the ends: one dimension of a 3-tap conv."""
    out = z.select(taps, 1).clone()
    n = out.shape[axis]
    out.narrow(axis, 1, n - 1).add_(z.select(taps, 0).narrow(axis, 0, n - 1))
    out.narrow(axis, 0, n - 1).add_(z.select(taps, 2).narrow(axis, 1, n - 1))
    return out


def one_channel_conv3d(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(B, C, D, H, W) x (1, C, 3, 3, 3) weight -> (B, 1, D, H, W), padding 1, no bias, in fp32
    (fp64 for fp64 input).

    One matrix product gives each of the 27 taps' channel sums, then three shifted 3-term sums
    (W, H, D) add them up. In fp32 this is exact to rounding; in bf16 the first sum is done in
    bf16 (mean error 0.0042 vs the convolution's 0.0033 for unit inputs).
    """
    b, c, d, h, w = x.shape
    flat = x.permute(1, 0, 2, 3, 4).reshape(c, -1)  # a view for channels_last_3d input
    planes = torch.mm(weight.reshape(c, 27).t().to(x.dtype), flat)  # (27, B*D*H*W)
    z = _shifted_sum(planes.view(3, 3, 3, b, d, h, w), 2, 5)  # over kw: (3, 3, B, D, H, W)
    z = z.to(torch.promote_types(z.dtype, torch.float32))
    z = _shifted_sum(z, 1, 3)  # over kh: (3, B, D, H, W)
    return _shifted_sum(z, 0, 1).unsqueeze(1)  # over kd: (B, 1, D, H, W)


class OneChannelConv3d(nn.Conv3d):
    """3x3x3 convolution to one channel, padding 1, no bias (the classifiers' last layer).

    oneDNN runs a conv3d with a single output channel at a fraction of its rate (26 GFLOP/s
    bf16 on 2 Zen 4 cores). On the CPU at inference (no autograd) ``one_channel_conv3d``
    replaces it: at PSMNet's 48x96x312 cost volume 0.106 instead of 0.195 s in fp32, 0.069
    instead of 0.094 s in bf16. Training, other devices and export (``decomposed=False``)
    use the convolution.
    """

    def __init__(self, channels: int):
        super().__init__(channels, 1, 3, 1, 1, bias=False)
        self.decomposed = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (not self.decomposed or self.training or torch.is_grad_enabled()
                or x.device.type != "cpu"):
            return super().forward(x)
        return one_channel_conv3d(x, self.weight)


class ResidualBlock(nn.Module):
    """PSMNet's basic block: conv-BN-ReLU, conv-BN, plus shortcut, with no ReLU after the sum."""

    def __init__(self, n_in: int, channels: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv1 = convbn_relu(n_in, channels, 3, stride, 1, dilation)
        self.conv2 = convbn(channels, channels, 3, 1, 1, dilation)
        self.downsample = (convbn(n_in, channels, 1, stride, 0)
                           if stride != 1 or n_in != channels else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.conv2(self.conv1(x)) + shortcut


def make_stage(n_in: int, channels: int, blocks: int, stride: int, dilation: int
               ) -> nn.Sequential:
    layers = [ResidualBlock(n_in, channels, stride, dilation)]
    layers += [ResidualBlock(channels, channels, 1, dilation) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)

"""PSMNet (Chang & Chen, CVPR 2018): features + SPP, concatenation cost volume, 3-D CNN,
soft-argmin regression.

Layer settings follow the published code that produced the paper's numbers, where it differs
from the paper's table:
- conv3_x and conv4_x use dilation 1 and 2 (the table says 2 and 4): ``dilations``;
- residual blocks add the shortcut without a ReLU after the sum;
- SPP uses fixed 64/32/16/8 average pools; on a quarter-resolution map smaller than a window
  the window is clipped to the map (the reference crashes there), so outputs equal the
  reference's wherever it runs;
- bilinear/trilinear upsampling follows ``align_corners``, which belongs to the weights: the
  2018 official releases were trained with PyTorch < 0.4.1, whose upsampling behaved as True,
  and lose most of their accuracy with False; the 2021 SceneFlow release needs False. The
  model card carries it. New runs default to True: from scratch the two measured alike (EPE
  1.46 vs 1.37 px over two seeds, whose spread was 0.34 px), so compatibility decides.
Any input size works: inputs are padded to a multiple of 16 and the output is cropped back.
Activations and weights use channels_last (2-D) and channels_last_3d (3-D): on the CPU this
makes the 3-D stages 1.56x faster (bench/stereo_speed.py) with the same results.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from cnnlab.errors import ConfigError
from cnnlab.stereo.choices import (
    ARCHITECTURE_RULES,
    DEFAULT_MAX_DISPARITY,
)
from cnnlab.stereo.data.preprocess import IMAGENET_PREPROCESS
from cnnlab.stereo.models.blocks import (
    ConvBN,
    ConvStack,
    OneChannelConv3d,
    convbn,
    convbn_3d,
    convbn_relu,
    convbn_relu_3d,
    deconvbn_3d,
    make_stage,
)
from cnnlab.stereo.models.cost_volume import build_concat_volume
from cnnlab.stereo.models.recompute import (
    keep_less_for_backward,
    may_remake,
    recompute_in_backward,
    remaking,
)
from cnnlab.stereo.models.registry import register_model


@dataclass
class PSMNetConfig:
    """PSMNet's architecture; saved in every model card as the builder's keyword arguments."""

    variant: str = "stackhourglass"
    max_disparity: int = DEFAULT_MAX_DISPARITY
    blocks: tuple[int, int, int, int] = (3, 16, 3, 3)  # conv1_x .. conv4_x
    dilations: tuple[int, int] = (1, 2)  # conv3_x, conv4_x (the paper's table: 2, 4)
    spp_pools: tuple[int, ...] = (64, 32, 16, 8)
    align_corners: bool = True  # see the module docstring

    def __post_init__(self):
        self.blocks = tuple(self.blocks)
        self.dilations = tuple(self.dilations)
        self.spp_pools = tuple(self.spp_pools)
        for name, rule in ARCHITECTURE_RULES.items():  # the rules training's settings keep
            rule.check(getattr(self, name), name)

    def to_dict(self) -> dict:
        data = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


class SpatialPyramidPooling(nn.Module):
    """Average pools at several scales -> 1x1 conv-BN-ReLU -> bilinear back to the map size."""

    def __init__(self, channels: int, branch_channels: int, pools: tuple[int, ...],
                 align_corners: bool):
        super().__init__()
        self.pools = pools
        self.align_corners = align_corners
        self.branches = nn.ModuleList(
            convbn_relu(channels, branch_channels, 1) for _ in pools)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        height, width = x.shape[-2:]
        outputs = []
        for pool, branch in zip(self.pools, self.branches):
            window = (min(pool, height), min(pool, width))  # clipped on small maps
            pooled = F.avg_pool2d(x, window, window)
            if self.training and pooled.shape[0] * pooled.shape[2] * pooled.shape[3] == 1:
                # one value per channel (batch 1, map below the window): BN cannot compute batch
                # statistics, so this branch normalises with its running statistics
                branch.eval()
                out = branch(pooled)
                branch.train()
            else:
                out = branch(pooled)
            outputs.append(F.interpolate(out, (height, width), mode="bilinear",
                                         align_corners=self.align_corners))
        return outputs


class FeatureExtractor(nn.Module):
    """(B, 3, H, W) -> (B, 32, H/4, W/4): CNN with dilated stages and SPP."""

    def __init__(self, config: PSMNetConfig, spp: type[nn.Module] | None = None):
        super().__init__()
        blocks = config.blocks
        dilation3, dilation4 = config.dilations
        self.stem = ConvStack(
            convbn(3, 32, 3, 2, 1), nn.ReLU(inplace=True),
            convbn(32, 32, 3, 1, 1), nn.ReLU(inplace=True),
            convbn(32, 32, 3, 1, 1), nn.ReLU(inplace=True))
        self.layer1 = make_stage(32, 32, blocks[0], 1, 1)
        self.layer2 = make_stage(32, 64, blocks[1], 2, 1)
        self.layer3 = make_stage(64, 128, blocks[2], 1, dilation3)
        self.layer4 = make_stage(128, 128, blocks[3], 1, dilation4)
        self.spp = (spp or SpatialPyramidPooling)(128, 32, config.spp_pools, config.align_corners)
        fused = 64 + 128 + 32 * len(config.spp_pools)  # conv2_16, conv4_3, branches = 320
        self.fusion = ConvStack(convbn(fused, 128, 3, 1, 1), nn.ReLU(inplace=True),
                                nn.Conv2d(128, 32, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer1(self.stem(x))
        raw = self.layer2(x)
        skip = self.layer4(self.layer3(raw))
        branches = self.spp(skip)
        return self.fusion(torch.cat([raw, skip, *reversed(branches)], dim=1))


class Hourglass(nn.Module):
    """3-D encoder-decoder (1/4 -> 1/16 -> 1/4) with the reference's pre/post skip wiring."""

    def __init__(self, channels: int):
        super().__init__()
        wide = channels * 2
        self.conv1 = convbn_relu_3d(channels, wide, 2)
        self.conv2 = convbn_3d(wide, wide)
        self.conv3 = convbn_relu_3d(wide, wide, 2)
        self.conv4 = convbn_relu_3d(wide, wide)
        self.conv5 = deconvbn_3d(wide, wide)
        self.conv6 = deconvbn_3d(wide, channels)

    def forward(self, x, presqu, postsqu):
        # the sums go into the fresh conv outputs: a new ~100 MB tensor per sum costs more than
        # the sum itself (page faults), and autograd allows it (BN keeps its input, not output)
        pre = self.conv2(self.conv1(x))
        pre = F.relu(pre.add_(postsqu) if postsqu is not None else pre, inplace=True)
        out = self.conv4(self.conv3(pre))
        post = F.relu(self.conv5(out).add_(presqu if presqu is not None else pre), inplace=True)
        return self.conv6(post), pre, post


def _classifier() -> ConvStack:
    return ConvStack(convbn_3d(32, 32), nn.ReLU(inplace=True), OneChannelConv3d(32))


def _residual_3d() -> ConvStack:
    return ConvStack(convbn_3d(32, 32), nn.ReLU(inplace=True), convbn_3d(32, 32))


def disparity_regression(cost: torch.Tensor, max_disparity: int, size: tuple[int, int],
                         align_corners: bool, row_chunk: int = 8) -> torch.Tensor:
    """(B, 1, D/4, H/4, W/4) cost -> (B, H, W): trilinear upsampling to (D, H, W), softmax over
    D, soft-argmin, as the published code does (the training path), with gradients.

    The upsampling is done one axis at a time as products with interpolation matrices (the
    same weights as ``F.interpolate``'s trilinear mode), and the full-resolution volume is
    never held: ``SoftArgminRows`` makes it ``row_chunk`` rows at a time in the forward pass
    and again in the backward pass. At 256x512, batch 2, bf16 this took the regression from
    about half of a CPU training step (trilinear backward, then softmax over a 200 MB volume
    per output and its saved copies) to a few percent. In fp32 even under ``--amp``: the sharp
    softmax and the disparity itself need it (bf16 rounds it to 0.5 px between 64 and 128)."""
    height, width = size
    dtype = torch.promote_types(cost.dtype, torch.float32)  # fp64 stays (tests' reference)
    with torch.autocast(cost.device.type, enabled=False):
        low = cost.squeeze(1).to(dtype)  # (B, D/4, H/4, W/4)
        matrices = (_linear_matrix(low.shape[-1], width, align_corners, low),
                    _linear_matrix(low.shape[1], max_disparity, align_corners, low),
                    _linear_matrix(low.shape[2], height, align_corners, low))
        return SoftArgminRows.apply(low, *matrices, align_corners, row_chunk)


def _upsample_width_levels(low: torch.Tensor, width_matrix: torch.Tensor,
                           levels_matrix: torch.Tensor) -> torch.Tensor:
    """(B, D/4, H/4, W/4) -> (B, H/4, W, D): W and D upsampled, disparities innermost."""
    return (low @ width_matrix.T).permute(0, 2, 3, 1) @ levels_matrix.T


class SoftArgminRows(torch.autograd.Function):
    """(B, D/4, H/4, W/4) cost and the (W, W/4), (D, D/4), (H, H/4) interpolation matrices ->
    (B, H, W): upsample W and D, then the rows a chunk at a time, softmax over D, soft-argmin.

    The gradient needs only the probabilities and the estimate: d(sum_d p_d d)/dv_d =
    p_d (d - estimate). The backward pass remakes the (B, H/4, W, D) volume from the cost
    (two small products) and each chunk's probabilities from it, so autograd keeps only the
    cost: 50 MB less per output at 256x512, batch 2, than keeping the volume.
    """

    @staticmethod
    def forward(ctx, low: torch.Tensor, width_matrix: torch.Tensor,
                levels_matrix: torch.Tensor, rows_matrix: torch.Tensor, align_corners: bool,
                row_chunk: int) -> torch.Tensor:
        with torch.autocast(low.device.type, enabled=False):  # fp32, whoever calls it
            volume = _upsample_width_levels(low, width_matrix, levels_matrix)
            out = _regress_rows(volume, rows_matrix, align_corners, row_chunk)
        ctx.save_for_backward(low, width_matrix, levels_matrix, rows_matrix, out)
        ctx.align_corners, ctx.row_chunk = align_corners, row_chunk
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        with torch.autocast(grad.device.type, enabled=False):  # fp32, as the forward pass
            return SoftArgminRows._backward(ctx, grad), None, None, None, None, None

    @staticmethod
    def _backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        low, width_matrix, levels_matrix, matrix, out = ctx.saved_tensors
        volume = _upsample_width_levels(low, width_matrix, levels_matrix)
        grad = grad.to(volume.dtype)
        b, low_h, width, levels = volume.shape
        disparities = torch.arange(levels, device=volume.device, dtype=volume.dtype)
        grad_volume = torch.zeros_like(volume)
        for start, stop, first, end in _row_chunks(low_h, matrix.shape[0], ctx.align_corners,
                                                   ctx.row_chunk):
            weights = matrix[start:stop, first:end]
            rows = weights @ volume[:, first:end].reshape(b, end - first, -1)
            probabilities = torch.softmax(rows.view(b, stop - start, width, levels), dim=-1)
            offset = disparities - out[:, start:stop, :, None]
            grad_rows = probabilities.mul_(offset).mul_(grad[:, start:stop, :, None])
            grad_volume[:, first:end] += (weights.T @ grad_rows.view(b, stop - start, -1)
                                          ).view(b, end - first, width, levels)
        del volume
        # back through the two products: (B, H/4, W, D) -> (B, H/4, W, D/4) -> (B, D/4, H/4, W/4)
        return (grad_volume @ levels_matrix).permute(0, 3, 1, 2) @ width_matrix


def _row_chunks(low_h: int, height: int, align_corners: bool, row_chunk: int | None):
    """(start, stop, first, end) for each chunk of ``row_chunk`` output rows [start, stop) and
    the source rows [first, end) it reads."""
    if row_chunk is not None and (not isinstance(row_chunk, int) or row_chunk < 1):
        raise ValueError(f"row_chunk must be a positive integer or None, got {row_chunk!r}")
    row_chunk = row_chunk or height
    for start in range(0, height, row_chunk):
        stop = min(start + row_chunk, height)
        yield (start, stop, *_source_span(low_h, height, align_corners, start, stop))


def _regress_rows(volume: torch.Tensor, matrix: torch.Tensor, align_corners: bool,
                  row_chunk: int | None, confidence_radius: float | None = None
                  ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """(B, H/4, W, D), (H, H/4) -> (B, H, W) disparities (and confidences with
    ``confidence_radius``), a chunk of rows at a time: each chunk reads the few source rows
    it needs and stays in cache, its softmax runs over contiguous memory and the soft-argmin
    is a matrix-vector product."""
    b, low_h, width, levels = volume.shape
    height = matrix.shape[0]
    disparities = torch.arange(levels, device=volume.device, dtype=volume.dtype)
    out = volume.new_empty(b, height, width)
    confidence = volume.new_empty(b, height, width) if confidence_radius is not None else None
    for start, stop, first, end in _row_chunks(low_h, height, align_corners, row_chunk):
        rows = matrix[start:stop, first:end] @ volume[:, first:end].reshape(b, end - first, -1)
        probabilities = torch.softmax(rows.view(b, stop - start, width, levels), dim=-1)
        out[:, start:stop] = probabilities @ disparities
        if confidence is not None:
            near = (disparities - out[:, start:stop, :, None]).abs() <= confidence_radius
            confidence[:, start:stop] = (probabilities * near).sum(-1)
    return out if confidence is None else (out, confidence)


def precise_disparity_regression(cost: torch.Tensor, max_disparity: int, size: tuple[int, int],
                                 align_corners: bool, row_chunk: int | None = None,
                                 confidence_radius: float | None = None
                                 ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``disparity_regression`` for inference: the same upsampling done one axis at a time with
    exact source coordinates, and the rows ``row_chunk`` at a time (None: all at once, the
    form an exported graph takes).

    Coordinates: fp32 ones (as ``F.interpolate`` and ONNX Resize compute them) move the
    sharp softmax enough to cost up to 8e-4 px against exact arithmetic (official weights, a
    KITTI crop); exact ones leave 3e-5 px, so an exported graph and PyTorch agree as closely
    as their convolutions do. Each axis is a product with an interpolation matrix (two
    weights per row). Chunks: W and D are upsampled once into a (B, H/4, W, D) volume,
    disparities innermost, and the rows are regressed by ``_regress_rows``; the
    full-resolution volume is never held (0.13 s instead of 0.56 s for the published form at
    384x1248, 2 cores).

    With ``confidence_radius`` r it also returns each pixel's confidence: the probability mass
    within r disparities of its estimate (1: one sharp peak; low: flat or several peaks).
    """
    height, width = size
    # W then D as products with interpolation matrices, into (B, H/4, W, D)
    volume = _upsample_width_levels(
        cost.squeeze(1), _linear_matrix(cost.shape[-1], width, align_corners, cost),
        _linear_matrix(cost.shape[2], max_disparity, align_corners, cost))
    b, low_h, _, levels = volume.shape
    matrix = _linear_matrix(low_h, height, align_corners, volume)  # H as a product too
    if row_chunk is None and confidence_radius is None:
        rows = matrix @ volume.reshape(b, low_h, -1)
        disparities = torch.arange(max_disparity, device=cost.device, dtype=cost.dtype)
        return torch.softmax(rows.view(b, height, width, levels), dim=-1) @ disparities
    return _regress_rows(volume, matrix, align_corners, row_chunk, confidence_radius)


def _source_span(in_size: int, out_size: int, align_corners: bool, start: int, stop: int
                 ) -> tuple[int, int]:
    """The source positions [first, end) that output positions [start, stop) of a linear
    resize read (``_linear_sources``' rule, in Python integers: no device sync)."""
    def lower(position: int) -> int:
        if align_corners:
            return position * (in_size - 1) // (out_size - 1) if out_size > 1 else 0
        return max((2 * position + 1) * in_size - out_size, 0) // (2 * out_size)
    return min(lower(start), in_size - 1), min(lower(stop - 1) + 1, in_size - 1) + 1


def _linear_sources(in_size: int, out_size: int, align_corners: bool, device: torch.device
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lower and upper source index and weight of the upper one, for each output position of
    a linear resize from ``in_size`` to ``out_size`` (PyTorch's rule). The coordinate is a
    fraction of integers, so the index is exact and the weight is rounded once, in any
    runtime and on devices without float64."""
    position = torch.arange(out_size, device=device)
    if align_corners:  # source = position * (in - 1) / (out - 1)
        numerator = position * (in_size - 1) if out_size > 1 else position * 0
        denominator = max(out_size - 1, 1)
    else:  # source = max((position + 1/2) * in / out - 1/2, 0)
        numerator = ((2 * position + 1) * in_size - out_size).clamp(min=0)
        denominator = 2 * out_size
    lower = torch.div(numerator, denominator, rounding_mode="floor")
    weight = (numerator - lower * denominator).float() / denominator
    lower = lower.clamp(max=in_size - 1)
    return lower, (lower + 1).clamp(max=in_size - 1), weight


def _linear_matrix(in_size: int, out_size: int, align_corners: bool, like: torch.Tensor
                   ) -> torch.Tensor:
    """(out_size, in_size) matrix of a linear resize, two weights per row, in ``like``'s
    dtype and device: a product with it resizes the last dimension."""
    lower, upper, weight = _linear_sources(in_size, out_size, align_corners, like.device)
    columns = torch.arange(in_size, device=like.device)
    matrix = ((columns == lower[:, None]) * (1 - weight)[:, None]
              + (columns == upper[:, None]) * weight[:, None])
    return matrix.to(like.dtype)


# module paths of checkpoints written before the modules were renamed (cnnlab <= 0.1.0)
LEGACY_PREFIXES = (("feature_extraction.firstconv.", "features.stem."),
                   ("feature_extraction.lastconv.", "features.fusion."),
                   ("feature_extraction.", "features."),
                   ("dres0.", "cost_stem."), ("dres1.", "cost_residual."))


def legacy_name(name: str) -> str:
    """Today's module path -> the one cnnlab <= 0.1.0 (and, for these modules, the official
    code) used."""
    for old, new in LEGACY_PREFIXES:
        if name.startswith(new):
            return old + name[len(new):]
    return name


def upgrade_state_keys(state: dict, prefix: str = "") -> None:
    """Rename, in place, the keys of an older cnnlab PSMNet checkpoint to today's modules."""
    for key in list(state):
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        for old, new in LEGACY_PREFIXES:
            if name.startswith(old):
                state[prefix + new + name[len(old):]] = state.pop(key)
                break


def _upgrade_hook(module: nn.Module, state: dict, prefix: str, *args: Any) -> None:
    upgrade_state_keys(state, prefix)
    if getattr(module, "int8_stage", None) is not None:  # built from the weights replaced
        object.__setattr__(module, "int8_stage", None)


class PSMNet(nn.Module):
    """(B, 3, H, W) left, right -> {"disparity": (B, H, W), "disparities": [...]}.

    One output contract in every mode and variant: ``disparity`` is the final estimate and
    ``disparities`` every supervised output, last = final (in training the stacked hourglass
    gives three, for the 0.5/0.7/1.0 loss; otherwise one). The stages are separate methods:
    features -> cost volume -> 3-D aggregation -> soft-argmin regression.
    """

    def __init__(self, config: PSMNetConfig | None = None, *,
                 spp: type[nn.Module] | None = None, hourglass: type[nn.Module] | None = None,
                 **overrides):
        """``spp`` and ``hourglass``: classes standing in for ``SpatialPyramidPooling(channels,
        branch_channels, pools, align_corners)`` and ``Hourglass(channels)`` (a student's
        drop-ins, the lab's exercise), initialised like the rest; ``parts`` names them."""
        super().__init__()
        config = config or PSMNetConfig(**overrides)
        self.config = config
        self.max_disparity = config.max_disparity
        self.parts = {name: f"{cls.__module__}.{cls.__qualname__}"
                      for name, cls in (("spp", spp), ("hourglass", hourglass)) if cls}
        if hourglass is not None and config.variant != "stackhourglass":
            raise ConfigError(f"the {config.variant} variant has no hourglass",
                              parameter="hourglass")
        self.features = FeatureExtractor(config, spp)
        self.cost_stem = ConvStack(convbn_3d(64, 32), nn.ReLU(inplace=True),
                                   convbn_3d(32, 32), nn.ReLU(inplace=True))
        self.cost_residual = _residual_3d()
        if config.variant == "stackhourglass":
            self.hourglasses = nn.ModuleList((hourglass or Hourglass)(32) for _ in range(3))
            self.classifiers = nn.ModuleList(_classifier() for _ in range(3))
        else:
            self.residuals = nn.ModuleList(_residual_3d() for _ in range(3))
            self.classifiers = nn.ModuleList([_classifier()])
        self.row_chunk: int | None = 8  # inference-time regression chunking (None: one go)
        # inference also returns "confidence" (see precise_disparity_regression) when set
        self.confidence_radius: float | None = None
        # the 3-D stage in int8 (stereo.inference.int8), run in eval mode when attached
        self.int8_stage: nn.Module | None = None
        self._init_weights()
        self._use_channels_last()
        self.register_load_state_dict_pre_hook(_upgrade_hook)

    def parts_text(self) -> str | None:
        """"PSMNet(spp=module.Class, ...)" when a student's parts stand in, else None: what
        a model card records and loading checks."""
        if not self.parts:
            return None
        return "PSMNet(" + ", ".join(f"{k}={v}" for k, v in self.parts.items()) + ")"

    def _use_channels_last(self) -> None:
        """channels_last weights for 2-D convs, channels_last_3d for 3-D ones."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose3d)):
                layout = (torch.channels_last if module.weight.dim() == 4
                          else torch.channels_last_3d)
                module.weight.data = module.weight.data.contiguous(memory_format=layout)

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Conv3d)):
                n = math.prod(module.kernel_size) * module.out_channels
                module.weight.data.normal_(0, math.sqrt(2.0 / n))
            elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm3d)):
                module.weight.data.fill_(1)
                module.bias.data.zero_()

    def set_max_disparity(self, max_disparity: int) -> PSMNet:
        """Change the disparity range searched, a multiple of 16: no parameter depends on it
        (scaled inference searches a range scaled with the images)."""
        self.config = replace(self.config, max_disparity=max_disparity)  # validates it
        self.max_disparity = max_disparity
        return self

    def train(self, mode: bool = True) -> PSMNet:
        """Training mode drops an attached int8 stage (built from weights training changes)."""
        if mode:
            self.int8_stage = None  # built from weights that training changes
        return super().train(mode)

    def fuse_for_inference(self) -> PSMNet:
        """Fold every BN into its convolution (eval mode only; training undoes it)."""
        self.eval()
        for module in self.modules():
            if isinstance(module, ConvBN):
                module.fuse()
        return self

    def build_cost_volume(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """(B, 32, H/4, W/4) x2 -> (B, 64, D/4, H/4, W/4) concatenation volume."""
        return build_concat_volume(left, right, self.max_disparity // 4, torch.channels_last_3d)

    def aggregate_costs(self, left: torch.Tensor, right: torch.Tensor) -> list[torch.Tensor]:
        """3-D CNN: the features of both views -> one (B, 1, D/4, H/4, W/4) cost per
        supervised output.

        The volume is built here so that nothing holds it once the stem has read it, and each
        hourglass output is scored as soon as it exists: at 384x1248 in bf16 the 3-D stage
        then holds ~0.4 GB less. Residual sums go in place into the fresh outputs (as in
        ``Hourglass.forward``). In eval mode an attached ``int8_stage`` computes the final
        cost alone (inference uses no other).
        """
        if self.int8_stage is not None and not self.training:
            return [self.int8_stage(left, right, self.max_disparity // 4)]
        volume = self.build_cost_volume(left, right)
        if self.training and remaking():  # remade from the small feature maps (2 MB each)
            recompute_in_backward(volume, partial(self.build_cost_volume, left.detach(),
                                                  right.detach()))
        cost0 = self.cost_stem(volume)
        del volume
        cost0 = self.cost_residual(cost0).add_(cost0)
        if self.config.variant == "basic":
            for residual in self.residuals:
                cost0 = residual(cost0).add_(cost0)
            return [self.classifiers[0](cost0)]
        # out_i = hourglass_i(out_{i-1}, pre of the first, post of the previous) + cost0;
        # cost_i = classifier_i(out_i) + cost_{i-1}
        out, pre1, post = self.hourglasses[0](cost0, None, None)
        out = out.add_(cost0)
        costs = [self.classifiers[0](out)]
        for hourglass, classifier in zip(self.hourglasses[1:], self.classifiers[1:]):
            out, _, post = hourglass(out, pre1, post)
            out = out.add_(cost0)
            costs.append(classifier(out) + costs[-1])
        return costs

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> dict[str, Any]:
        if left.shape != right.shape:
            raise ValueError(f"left {tuple(left.shape)} and right {tuple(right.shape)} differ")
        height, width = left.shape[-2:]
        pad_h, pad_w = (-height) % 16, (-width) % 16
        if pad_h or pad_w:  # pad bottom/right with zeros (the mean colour after normalising)
            left = F.pad(left, (0, pad_w, 0, pad_h))
            right = F.pad(right, (0, pad_w, 0, pad_h))
        padded = left.shape[-2:]
        left = left.contiguous(memory_format=torch.channels_last)
        right = right.contiguous(memory_format=torch.channels_last)
        if self.training and may_remake():
            with keep_less_for_backward():  # see recompute: same results, less memory
                costs = self.aggregate_costs(self.features(left), self.features(right))
        else:
            costs = self.aggregate_costs(self.features(left), self.features(right))
        # at inference only the final output is regressed, and the soft-argmin stays in fp32
        # under autocast: in bf16 its softmax over 192 levels and weighted sum cost accuracy
        # (official KITTI 2015 weights, the 3 shared pairs: EPE 0.3571 instead of 0.3497 px;
        # with this fp32 regression bf16 gives 0.3494).
        # Training regresses every output, in fp32 too (disparity_regression), a chunk of rows
        # at a time, so no full-resolution (B, D, H, W) volume is held
        if self.training:
            disparities = [disparity_regression(c, self.max_disparity, padded,
                                                self.config.align_corners)[:, :height, :width]
                           for c in costs]
            return {"disparity": disparities[-1], "disparities": disparities}
        with torch.autocast(left.device.type, enabled=False):
            regressed = precise_disparity_regression(costs[-1].float(), self.max_disparity,
                                                     padded, self.config.align_corners,
                                                     self.row_chunk, self.confidence_radius)
        out = {}
        if self.confidence_radius is not None:
            regressed, confidence = regressed
            out["confidence"] = confidence[:, :height, :width]
        disparity = regressed[:, :height, :width]
        return out | {"disparity": disparity, "disparities": [disparity]}


@register_model("psmnet", preprocess=IMAGENET_PREPROCESS,
                description="PSMNet (Chang & Chen, CVPR 2018): variant stackhourglass or basic, "
                            "any max_disparity that is a multiple of 16")
def psmnet(**kwargs: Any) -> PSMNet:
    """PSMNet with ``PSMNetConfig(**kwargs)``."""
    return PSMNet(PSMNetConfig(**kwargs))

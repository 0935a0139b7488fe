"""Residual networks: basic and bottleneck blocks composed by one stage builder."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.classify.networks.registry import register_model


def conv_bn(n_in: int, n_out: int, kernel: int, stride: int = 1, padding: int = 0
            ) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(n_in, n_out, kernel, stride, padding, bias=False),
                         nn.BatchNorm2d(n_out))


class BasicBlock(nn.Module):
    """Two 3x3 conv+BN; identity shortcut, or 1x1 conv+BN projection when the shape changes."""

    expansion = 1

    def __init__(self, n_in: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv_bn(n_in, channels, 3, stride, 1)
        self.conv2 = conv_bn(channels, channels, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = (conv_bn(n_in, channels, 1, stride)
                         if stride != 1 or n_in != channels else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.relu(self.conv1(x)))
        return self.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand x4, each with BN; projection when needed."""

    expansion = 4

    def __init__(self, n_in: int, channels: int, stride: int = 1):
        super().__init__()
        out = channels * self.expansion
        self.conv1 = conv_bn(n_in, channels, 1)
        self.conv2 = conv_bn(channels, channels, 3, stride, 1)
        self.conv3 = conv_bn(channels, out, 1)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = conv_bn(n_in, out, 1, stride) if stride != 1 or n_in != out \
            else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.conv1(x))
        y = self.relu(self.conv2(y))
        return self.relu(self.conv3(y) + self.shortcut(x))


def _make_stage(block: type[nn.Module], n_in: int, channels: int, n: int, stride: int
                ) -> nn.Sequential:
    layers = [block(n_in, channels, stride)]
    layers += [block(channels * block.expansion, channels, 1) for _ in range(n - 1)]
    return nn.Sequential(*layers)


def _stem(kind: str, in_channels: int, width: int) -> nn.Sequential:
    if kind == "imagenet":  # 7x7/2 conv + BN + ReLU + 3x3/2 max-pool
        return nn.Sequential(conv_bn(in_channels, width, 7, 2, 3), nn.ReLU(inplace=True),
                             nn.MaxPool2d(3, 2, 1))
    if kind == "cifar":  # 3x3/1 conv: keeps 28/32-pixel inputs from shrinking to nothing
        return nn.Sequential(conv_bn(in_channels, width, 3, 1, 1), nn.ReLU(inplace=True))
    raise ValueError(f"stem must be 'imagenet' or 'cifar', got {kind!r}")


class ResNet(nn.Module):
    """Stem, four stages (width x 1, 2, 4, 8; strides 1, 2, 2, 2), global average pool, FC."""

    def __init__(self, block: type[nn.Module], layers: tuple[int, ...], in_channels: int = 1,
                 num_classes: int = 10, width: int = 64, stem: str = "imagenet"):
        super().__init__()
        self.stem = _stem(stem, in_channels, width)
        stages, channels = [], width
        for i, n in enumerate(layers):
            out = width * 2**i
            stages.append(_make_stage(block, channels, out, n, 1 if i == 0 else 2))
            channels = out * block.expansion
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(channels, num_classes))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


@register_model(28, "7x7/2 stem, 4 residual stages 64-512 (1 block each), GAP, FC")
def simple_resnet(in_channels: int = 1, num_classes: int = 10, blocks: int = 1, width: int = 64
                  ) -> ResNet:
    """7x7/2 stem + max-pool, stages 64-128-256-512 (strides 1,2,2,2) of ``blocks`` basic blocks."""
    return ResNet(BasicBlock, (blocks,) * 4, in_channels, num_classes, width, "imagenet")


@register_model(None, "ResNet-18, 3x3 stem (stem='imagenet' for d2l's)")
def resnet18(in_channels: int = 1, num_classes: int = 10, width: int = 64, stem: str = "cifar"
             ) -> ResNet:
    """ResNet-18 (2,2,2,2 basic blocks); 3x3 'cifar' stem by default, 'imagenet' is d2l's."""
    return ResNet(BasicBlock, (2, 2, 2, 2), in_channels, num_classes, width, stem)


@register_model(224, "ResNet-50, bottleneck blocks 3-4-6-3")
def resnet50(in_channels: int = 3, num_classes: int = 10, width: int = 64,
             stem: str = "imagenet") -> ResNet:
    """ResNet-50 (3,4,6,3 bottleneck blocks, expansion 4) as in He et al. 2016."""
    return ResNet(Bottleneck, (3, 4, 6, 3), in_channels, num_classes, width, stem)

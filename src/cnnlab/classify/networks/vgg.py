"""VGG networks built from (num_convs, channels) blocks, d2l style, with a width ratio."""

from __future__ import annotations

from torch import nn

from cnnlab.classify.networks.registry import register_model
from cnnlab.classify.networks.simple import ConvReLU

VGG11 = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))
VGG16 = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


class VGGBlock(nn.Sequential):
    """``num_convs`` 3x3 same-padding convs with ReLU, then a 2x2 max-pool."""

    def __init__(self, num_convs: int, n_in: int, n_out: int, batch_norm: bool = False):
        layers = [ConvReLU(n_in if i == 0 else n_out, n_out, padding=1, batch_norm=batch_norm)
                  for i in range(num_convs)]
        super().__init__(*layers, nn.MaxPool2d(2))


class VGG(nn.Module):
    """Five VGG blocks (224 -> 7) and the 4096-4096 classifier with dropout 0.5."""

    def __init__(self, arch, in_channels: int = 1, num_classes: int = 10, width_ratio: int = 1,
                 batch_norm: bool = False, hidden: int = 4096, dropout: float = 0.5):
        super().__init__()
        if width_ratio < 1:
            raise ValueError(f"width_ratio must be >= 1, got {width_ratio}")
        blocks, channels = [], in_channels
        for num_convs, out_channels in arch:
            out_channels //= width_ratio
            blocks.append(VGGBlock(num_convs, channels, out_channels, batch_norm))
            channels = out_channels
        self.features = nn.Sequential(*blocks)
        hidden //= width_ratio
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * 7 * 7, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


@register_model(224, "VGG-11 (d2l blocks), width_ratio divides channels")
def vgg11(in_channels: int = 1, num_classes: int = 10, width_ratio: int = 1,
          batch_norm: bool = False) -> VGG:
    return VGG(VGG11, in_channels, num_classes, width_ratio, batch_norm)


@register_model(224, "VGG-16, 13 convs + 3 FC")
def vgg16(in_channels: int = 1, num_classes: int = 10, width_ratio: int = 1,
          batch_norm: bool = False) -> VGG:
    return VGG(VGG16, in_channels, num_classes, width_ratio, batch_norm)

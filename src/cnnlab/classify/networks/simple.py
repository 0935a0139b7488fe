"""The course's own small networks: simple_cnn and simple_vgg."""

from __future__ import annotations

from itertools import pairwise

from torch import nn

from cnnlab.classify.networks.registry import register_model


class ConvReLU(nn.Sequential):
    """Conv2d followed by ReLU (and optional batch norm in between)."""

    def __init__(self, n_in: int, n_out: int, kernel: int = 3, padding: int = 0,
                 stride: int = 1, batch_norm: bool = False):
        layers: list[nn.Module] = [nn.Conv2d(n_in, n_out, kernel, stride, padding,
                                             bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(n_out))
        layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


def classifier_head(sizes: list[int], dropout: float = 0.0) -> nn.Sequential:
    """Flatten + Linear/ReLU(/Dropout) stack whose last layer emits raw logits."""
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (n_in, n_out) in enumerate(pairwise(sizes)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU(inplace=True))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


@register_model(28, "3 convs (20-50-20), 2 max-pools, FC 180-100")
def simple_cnn(in_channels: int = 1, num_classes: int = 10) -> nn.Sequential:
    """conv 20 k3, pool, conv 50 k3, pool, conv 20 k3 -> 3x3x20 = 180 -> 100 -> classes (28x28)."""
    return nn.Sequential(
        ConvReLU(in_channels, 20), nn.MaxPool2d(2),
        ConvReLU(20, 50), nn.MaxPool2d(2),
        ConvReLU(50, 20),
        classifier_head([180, 100, num_classes]),
    )


@register_model(28, "8 VGG 3x3 convs (64..512), 5 pools, FC 512-100-100")
def simple_vgg(in_channels: int = 1, num_classes: int = 10, dropout: float = 0.2
               ) -> nn.Sequential:
    """Eight 3x3 convs 64..512, five 2x2 pools (28x28 -> 30,15,17,8,10,5,2,1), FC 512-100-100.

    Padding 2 on the first three convs and 1 on the rest, as in the course's answer key; unlike
    the key there is no ReLU after the last linear layer, so logits can be negative.
    """
    plan = [  # (out_channels, padding, pool_after)
        (64, 2, True), (128, 2, True), (256, 2, False), (256, 1, True),
        (512, 1, False), (512, 1, True), (512, 1, False), (512, 1, True),
    ]
    layers: list[nn.Module] = []
    channels = in_channels
    for out_channels, padding, pool in plan:
        layers.append(ConvReLU(channels, out_channels, padding=padding))
        if pool:
            layers.append(nn.MaxPool2d(2))
        channels = out_channels
    return nn.Sequential(*layers, classifier_head([512, 100, 100, num_classes], dropout))

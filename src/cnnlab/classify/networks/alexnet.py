"""AlexNet as in d2l (one tower, 96-256-384-384-256 channels, 224x224 input)."""

from __future__ import annotations

from torch import nn

from cnnlab.classify.networks.registry import register_model
from cnnlab.classify.networks.simple import ConvReLU


@register_model(224, "AlexNet (d2l, one tower), 96-256-384-384-256, FC 4096")
def alexnet(in_channels: int = 1, num_classes: int = 10, dropout: float = 0.5) -> nn.Sequential:
    """11x11/4 conv 96, 3x3/2 pool, 5x5 conv 256, pool, 3x 3x3 convs, pool, FC 6400-4096-4096."""
    return nn.Sequential(
        ConvReLU(in_channels, 96, kernel=11, stride=4, padding=1), nn.MaxPool2d(3, 2),
        ConvReLU(96, 256, kernel=5, padding=2), nn.MaxPool2d(3, 2),
        ConvReLU(256, 384, padding=1), ConvReLU(384, 384, padding=1),
        ConvReLU(384, 256, padding=1), nn.MaxPool2d(3, 2),
        nn.Flatten(),
        nn.Linear(6400, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
        nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
        nn.Linear(4096, num_classes),
    )

"""LeNet-5 (LeCun 1998: tanh, average pooling, 32x32) and the d2l LeNet (sigmoid, 28x28)."""

from __future__ import annotations

from torch import nn

from cnnlab.classify.networks.registry import register_model


@register_model(32, "LeNet-5 (LeCun 1998): tanh, avg-pool, convs 6-16-120, FC 84")
def lenet5(in_channels: int = 1, num_classes: int = 10) -> nn.Sequential:
    """C1 6@28x28, S2, C3 16@10x10, S4, C5 120@1x1, F6 84, output; 32x32 input."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(16, 120, 5), nn.Tanh(),
        nn.Flatten(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, num_classes),
    )


@register_model(28, "d2l LeNet: sigmoid, avg-pool, padding 2, FC 120-84")
def lenet(in_channels: int = 1, num_classes: int = 10) -> nn.Sequential:
    """d2l's LeNet: conv 6 k5 p2, sigmoid, avgpool, conv 16 k5, sigmoid, avgpool, 400-120-84."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), nn.Sigmoid(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(400, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, num_classes),
    )

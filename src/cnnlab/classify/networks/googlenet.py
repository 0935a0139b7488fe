"""GoogLeNet (Szegedy et al. 2015) as in d2l: five stages, nine Inception modules, 96x96 input."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.classify.networks.registry import register_model
from cnnlab.classify.networks.simple import ConvReLU


class Inception(nn.Module):
    """Four parallel paths: 1x1; 1x1->3x3; 1x1->5x5; 3x3 max-pool->1x1; concatenated."""

    def __init__(self, n_in: int, c1: int, c2: tuple[int, int], c3: tuple[int, int], c4: int):
        super().__init__()
        self.path1 = ConvReLU(n_in, c1, kernel=1)
        self.path2 = nn.Sequential(ConvReLU(n_in, c2[0], kernel=1),
                                   ConvReLU(c2[0], c2[1], kernel=3, padding=1))
        self.path3 = nn.Sequential(ConvReLU(n_in, c3[0], kernel=1),
                                   ConvReLU(c3[0], c3[1], kernel=5, padding=2))
        self.path4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1),
                                   ConvReLU(n_in, c4, kernel=1))
        self.out_channels = c1 + c2[1] + c3[1] + c4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.path1(x), self.path2(x), self.path3(x), self.path4(x)], dim=1)


# (in, c1, (c2 reduce, c2), (c3 reduce, c3), c4) for the nine modules, grouped by stage
INCEPTION_PLAN = (
    ((192, 64, (96, 128), (16, 32), 32), (256, 128, (128, 192), (32, 96), 64)),
    ((480, 192, (96, 208), (16, 48), 64), (512, 160, (112, 224), (24, 64), 64),
     (512, 128, (128, 256), (24, 64), 64), (512, 112, (144, 288), (32, 64), 64),
     (528, 256, (160, 320), (32, 128), 128)),
    ((832, 256, (160, 320), (32, 128), 128), (832, 384, (192, 384), (48, 128), 128)),
)


@register_model(96, "GoogLeNet (d2l), 9 Inception modules")
def googlenet(in_channels: int = 1, num_classes: int = 10) -> nn.Sequential:
    pool = nn.MaxPool2d(3, stride=2, padding=1)
    stages: list[nn.Module] = [
        nn.Sequential(ConvReLU(in_channels, 64, kernel=7, stride=2, padding=3), pool),
        nn.Sequential(ConvReLU(64, 64, kernel=1), ConvReLU(64, 192, padding=1),
                      nn.MaxPool2d(3, stride=2, padding=1)),
    ]
    for i, plan in enumerate(INCEPTION_PLAN):
        modules: list[nn.Module] = [Inception(*spec) for spec in plan]
        last = i == len(INCEPTION_PLAN) - 1
        modules.append(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()) if last
                       else nn.MaxPool2d(3, stride=2, padding=1))
        stages.append(nn.Sequential(*modules))
    return nn.Sequential(*stages, nn.Linear(1024, num_classes))

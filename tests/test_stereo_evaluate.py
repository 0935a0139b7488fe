"""stereo/evaluate.py: inference on a pair at a chosen precision and scale."""

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.engine.card import ModelCard
from cnnlab.errors import ConfigError
from cnnlab.stereo.inference.methods import FAST_SCALE, disparity_of, scaled_max_disparity
from cnnlab.stereo.models import PSMNet, PSMNetConfig
from cnnlab.stereo.weights.card import psmnet_card


class ConstantShift(nn.Module):
    """Answers a disparity of 4 px at whatever size it is given, and records its inputs."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.max_disparity = 192
        self.seen = []

    def set_max_disparity(self, max_disparity: int):
        self.max_disparity = max_disparity
        return self

    def forward(self, left, right):
        self.seen.append((tuple(left.shape), self.max_disparity))
        return {"disparity": torch.full((1, *left.shape[-2:]), 4.0)}


def _card() -> ModelCard:
    return psmnet_card(PSMNetConfig())


def test_the_range_scales_with_the_images_to_a_multiple_of_16():
    assert scaled_max_disparity(192, FAST_SCALE) == 128
    assert scaled_max_disparity(192, 0.5) == 96
    assert scaled_max_disparity(192, 0.6) == 128  # 115.2 -> the next multiple of 16
    assert scaled_max_disparity(16, 0.1) == 16


def test_a_scaled_run_answers_in_full_size_and_full_resolution_pixels():
    model = ConstantShift()
    pair = np.zeros((90, 120, 3), np.uint8)
    disparity = disparity_of(model, _card(), pair, pair, scale=0.5)
    assert model.seen == [((1, 3, 45, 60), 96)] and model.max_disparity == 192  # restored
    assert disparity.shape == (90, 120) and np.allclose(disparity, 8.0)  # 4 px at half size
    disparity = disparity_of(model, _card(), pair, pair)  # back to full scale and range
    assert model.seen[-1] == ((1, 3, 90, 120), 192) and np.allclose(disparity, 4.0)
    with pytest.raises(ConfigError, match=r"scale must be a number in \(0, 1\], got 1.5"):
        disparity_of(model, _card(), pair, pair, scale=1.5)


def test_the_range_is_a_run_time_setting_of_psmnet():
    model = PSMNet(PSMNetConfig(max_disparity=32, blocks=(1, 1, 1, 1))).eval()
    model.set_max_disparity(16)
    assert model.config.max_disparity == 16
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 48), torch.randn(1, 3, 32, 48))["disparity"]
    assert out.shape == (1, 32, 48) and float(out.max()) <= 15 + 1e-4  # levels 0..15
    with pytest.raises(ConfigError, match="multiple of 16"):
        model.set_max_disparity(20)

"""engine/optim.py: optimizers and learning-rate schedules."""

from itertools import pairwise

import pytest
import torch
from torch import nn

from cnnlab.engine.optim import LRSchedule, build_optimizer
from cnnlab.errors import ConfigError


def test_onecycle_shape():
    s = LRSchedule("onecycle", 0.1, total_steps=100, steps_per_epoch=10)
    lrs = [s.lr_at(i) for i in range(100)]
    assert lrs[0] == pytest.approx(0.1 / 25)
    assert max(lrs) == pytest.approx(0.1) and lrs.index(max(lrs)) == 25
    assert lrs[-1] < 1e-3 and all(a >= b for a, b in pairwise(lrs[25:]))


def test_step_and_cosine():
    step = LRSchedule("step", 1.0, 100, 10, milestones=(3, 6), gamma=0.5)
    assert [step.lr_at(e * 10) for e in (0, 2, 3, 5, 6, 9)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    cosine = LRSchedule("cosine", 1.0, 100, 10, warmup_steps=10)
    assert cosine.lr_at(0) == pytest.approx(0.1) and cosine.lr_at(9) == pytest.approx(1.0)
    assert cosine.lr_at(55) == pytest.approx(0.5, abs=0.03)
    with pytest.raises(ConfigError, match="schedule: choose from"):
        LRSchedule("exp", 1.0, 10, 1)


def test_build_optimizer_choices():
    params = [nn.Parameter(torch.zeros(2))]
    for name, cls in (("sgd", torch.optim.SGD), ("adam", torch.optim.Adam),
                      ("adamw", torch.optim.AdamW), ("adadelta", torch.optim.Adadelta)):
        assert isinstance(build_optimizer(params, name, 0.1), cls)
    with pytest.raises(ConfigError, match="optimizer: choose from"):
        build_optimizer(params, "rmsprop", 0.1)
    with pytest.raises(ConfigError, match="lr must be positive"):
        build_optimizer(params, "sgd", 0.0)

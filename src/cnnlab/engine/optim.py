"""Optimizers and learning-rate schedules from plain config values.

The schedule is a pure function of the global step, so resuming needs only the step count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.engine.config import OPTIMIZERS, SCHEDULES
from cnnlab.errors import ConfigError

__all__ = ["OPTIMIZERS", "SCHEDULES", "LRSchedule", "build_optimizer", "clip_gradients"]
ONECYCLE_RISE = 0.25  # share of the steps over which onecycle rises (OneCycleLR's pct_start)


def build_optimizer(params, name: str, lr: float, momentum: float = 0.9,
                    weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999)
                    ) -> torch.optim.Optimizer:
    """SGD (with momentum, Nesterov off), Adam, AdamW or Adadelta."""
    if lr <= 0:
        raise ConfigError(f"must be positive, got {lr}", parameter="lr")
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay)
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr=lr, weight_decay=weight_decay)
    raise ConfigError(f": choose from {', '.join(OPTIMIZERS)}, not {name!r}",
                      parameter="optimizer")


@dataclass(frozen=True)
class LRSchedule:
    """Learning rate as a function of the optimizer step.

    step: multiply by ``gamma`` at each of ``milestones`` (in epochs); cosine: from base to 0
    with optional linear warm-up; onecycle: linear rise from base/25 to base over
    ``ONECYCLE_RISE`` of the steps, then cosine down to base/25/1e4 (OneCycleLR's defaults).
    """

    kind: str
    base_lr: float
    total_steps: int
    steps_per_epoch: int
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    warmup_steps: int = 0

    def __post_init__(self):
        if self.kind not in SCHEDULES:
            raise ConfigError(f": choose from {', '.join(SCHEDULES)}, not {self.kind!r}",
                              parameter="schedule")

    def lr_at(self, step: int) -> float:
        step = min(step, max(self.total_steps - 1, 0))
        if self.kind == "constant":
            return self.base_lr
        if self.kind == "step":
            epoch = step // max(self.steps_per_epoch, 1)
            return self.base_lr * self.gamma ** sum(epoch >= m for m in self.milestones)
        if self.kind == "cosine":
            if step < self.warmup_steps:
                return self.base_lr * (step + 1) / self.warmup_steps
            span = max(self.total_steps - self.warmup_steps, 1)
            progress = (step - self.warmup_steps) / span
            return 0.5 * self.base_lr * (1 + math.cos(math.pi * progress))
        # onecycle
        initial = self.base_lr / 25.0
        final = initial / 1e4
        up = max(int(ONECYCLE_RISE * self.total_steps), 1)
        if step < up:
            return initial + (self.base_lr - initial) * step / up
        progress = (step - up) / max(self.total_steps - up, 1)
        return final + 0.5 * (self.base_lr - final) * (1 + math.cos(math.pi * progress))

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        lr = self.lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr


def clip_gradients(model: nn.Module, max_norm: float | None) -> None:
    if max_norm:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)

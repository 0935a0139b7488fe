"""The stereo lab's training face: ``psmnet`` builds PSMNet with a student's SPP and
hourglass dropped in, ``train`` trains or fine-tunes it with validation and checkpoints."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

from torch import nn

from cnnlab.engine.config import OptimConfig
from cnnlab.engine.lab import train_run
from cnnlab.engine.network import network_factory
from cnnlab.engine.session import (
    RunFolder,
    absolute,
    check_resumable,
    live_curves,
    run_folder,
    split_settings,
)
from cnnlab.errors import ConfigError
from cnnlab.stereo.choices import TRAIN_DEFAULTS
from cnnlab.stereo.models import PSMNetConfig
from cnnlab.stereo.models.psmnet import PSMNet
from cnnlab.stereo.training.lab import (
    ARCHITECTURE,
    StereoConfig,
    StereoLab,
    stereo_run,
)

# settings train() takes by keyword: the recipe's fields (the architecture comes with the model)
TASK_SETTINGS = tuple(f.name for f in dataclasses.fields(StereoConfig)
                      if f.name not in ("dataset", "module", *ARCHITECTURE))
OPTIM_SETTINGS = tuple(f.name for f in dataclasses.fields(OptimConfig) if f.name != "epochs")


def psmnet(spp: type[nn.Module] | None = None, hourglass: type[nn.Module] | None = None,
           **architecture: Any) -> PSMNet:
    """PSMNet (stacked hourglass by default) with your classes in place of cnnlab's:
    ``spp(channels, branch_channels, pools, align_corners)`` (its forward returns the list of
    branch maps) and ``hourglass(channels)`` (forward(x, presqu, postsqu) -> out, pre, post),
    as the lab's exercise asks. ``architecture``: variant, max_disparity, blocks, ..."""
    for name, part in (("spp", spp), ("hourglass", hourglass)):
        if part is not None and not (isinstance(part, type) and issubclass(part, nn.Module)):
            raise ConfigError(f"expects your nn.Module class (not an instance), got "
                              f"{type(part).__name__}", parameter=name)
    try:
        config = PSMNetConfig(**architecture)
    except TypeError as exc:
        known = ", ".join(f.name for f in dataclasses.fields(PSMNetConfig))
        raise ConfigError(f"{exc}; architecture options: {known}",
                          parameter="architecture") from None
    except ValueError as exc:
        raise ConfigError(str(exc), parameter="architecture") from None
    return PSMNet(config, spp=spp, hourglass=hourglass)


class StereoRun(RunFolder):
    """A stereo training run: ``history``, ``results`` (validation EPE and D1 of the last
    weights, where there are validation pairs), ``curves()``, ``checkpoint`` and ``model``
    (the trained network)."""

    def __init__(self, path: os.PathLike, model: nn.Module | None):
        super().__init__(path)
        self.model = model

    def summary(self) -> str:
        val = self.results.get("val", {})
        figures = (f", validation EPE {val['epe']:.3f} px, D1 {val['d1']:.2f}%"
                   if "epe" in val and "d1" in val else "")
        return super().summary() + figures


def train(model: object = "psmnet", dataset: str = "synthetic", *, epochs: int = 10,
          out: str | os.PathLike | None = None, init: str | None = None, resume: bool = False,
          device: str = "auto", live: bool | None = None, progress: bool = True,
          log: Callable[[str], None] = print, **settings: Any) -> StereoRun:
    """Train PSMNet on ``dataset`` ("synthetic", "kitti2015", "kitti2012", "sceneflow",
    "middlebury", "folder") with validation after each epoch and checkpoints in ``out``
    (default a fresh folder under ``runs/``); ``init`` starts from weights (e.g.
    "psmnet-kitti2015", the published fine-tuning). ``model``: "psmnet" or a network from
    ``psmnet(spp=..., hourglass=...)`` (an instance is trained in place; a function giving
    one, e.g. ``lambda: psmnet(spp=MySPP)``, is called under ``seed``). ``settings``: lr,
    batch_size, crop, samples_per_epoch, val_count, amp, seed, data_root, ...; by default
    those of ``cnnlab stereo train`` (batch 4, lr 1e-3, the step schedule at the dataset's
    published milestones, amp "auto": bf16 on a CPU that computes it natively).
    ``data_root`` defaults to the folder ``cnnlab.setup()`` found."""
    task_settings, optim_settings = split_settings(settings, TASK_SETTINGS, OPTIM_SETTINGS)
    for key in ("data_root", "weights_root"):
        if key in task_settings:
            task_settings[key] = absolute(task_settings[key])
    factory, architecture, module = None, {}, None
    if not isinstance(model, str) or model != "psmnet":
        factory = network_factory(model)  # a class or function: called under the run's seed
        network = model if isinstance(model, nn.Module) else factory()
        if not isinstance(network, PSMNet):
            raise ConfigError(f"expected \"psmnet\" or a network from cnnlab.stereo.psmnet(...), "
                              f"got {type(network).__name__}", parameter="model")
        architecture = network.config.to_dict()
        module = network.parts_text()
    config = StereoConfig(dataset=dataset, init=init, module=module,
                          **{k: tuple(v) if isinstance(v, list) else v
                             for k, v in architecture.items()}, **task_settings)
    defaults = {k: v for k, v in TRAIN_DEFAULTS.items() if k != "epochs"}
    optim = OptimConfig(epochs=epochs, **{**defaults, **optim_settings})
    out = run_folder(out, resume, f"psmnet-{dataset}")
    curves = live_curves(live, f"PSMNet on {dataset}", out, resume)
    lab = StereoLab(factory)
    if resume:
        check_resumable(stereo_run(config, optim), lab, out)
    train_run(stereo_run(config, optim), lab, out, resume, device, log=log, progress=progress,
              on_epoch=curves)
    return StereoRun(out, lab.built)

"""``train``: any network (a registry name or the student's own ``nn.Module``) on a dataset in
one call, with live curves in a notebook; returns a ``Run`` that shows, evaluates and
predicts."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from cnnlab.classify.classifier import Classifier, load
from cnnlab.classify.evaluate import Evaluation
from cnnlab.classify.predict import Predictions
from cnnlab.classify.training import ClassifyConfig, ClassifyLab, classify_run
from cnnlab.engine.config import OptimConfig, read_config_file
from cnnlab.engine.lab import train_run
from cnnlab.engine.network import network_factory, qualified_name
from cnnlab.engine.plotting import Picture
from cnnlab.engine.session import (
    RunFolder,
    absolute,
    check_resumable,
    compare_runs,
    live_curves,
    run_folder,
    split_settings,
)

# settings train() takes by keyword: the recipe's (ClassifyConfig, OptimConfig) fields
TASK_SETTINGS = tuple(f.name for f in dataclasses.fields(ClassifyConfig)
                      if f.name not in ("dataset", "model", "module", "limit"))
OPTIM_SETTINGS = tuple(f.name for f in dataclasses.fields(OptimConfig) if f.name != "epochs")


class Run(RunFolder):
    """A training run's folder and what came out of it: ``history`` (one row per epoch),
    ``results`` (test accuracy of the last weights), ``curves()``, ``evaluate()`` and
    ``predict()`` with the trained network."""

    def __init__(self, path: Path, network: nn.Module | None = None, model: object = None):
        super().__init__(path)
        self._network, self._model = network, model
        self._classifier: Classifier | None = None

    def classifier(self, which: str = "last") -> Classifier:
        """The trained network with its card: the ``which`` ("last" or "best") checkpoint."""
        if which == "last" and self._classifier is not None:
            return self._classifier
        loaded = load(self.path, model=self._model, which=which)
        if self._network is not None and which == "last":
            # the very module that was trained (a student's instance stays theirs)
            loaded = Classifier(self._network.eval(), loaded.card, loaded.name)
        if which == "last":
            self._classifier = loaded
        return loaded

    def evaluate(self, dataset: str | None = None, **options) -> Evaluation:
        """Accuracy, confusion matrix and mistakes of the last weights on the test set (the
        run's own ``test_limit`` first images, as its results were; see
        ``Classifier.evaluate`` for the options)."""
        if dataset is None and "limit" not in options:
            options["limit"] = read_config_file(self.path)["classify"].get("test_limit")
        return self.classifier().evaluate(dataset, **options)

    def predict(self, images: object, *, top_k: int = 3) -> Predictions:
        """Top classes of images (files, PIL images, uint8 arrays) by the last weights."""
        return self.classifier().predict(images, top_k=top_k)

    def summary(self) -> str:
        results = self.results
        accuracy = (f", test accuracy {100 * results['test_accuracy']:.2f}%"
                    if "test_accuracy" in results else "")
        return super().summary() + accuracy


def train(model: object, dataset: str = "fashion-mnist", *, epochs: int = 10,
          limit: int | None = None, out: str | os.PathLike | None = None,
          resume: bool = False, device: str = "auto", download: bool = False,
          live: bool | None = None, progress: bool = True, name: str | None = None,
          log: Callable[[str], None] = print, **settings: Any) -> Run:
    """Train ``model`` on ``dataset`` ("mnist", "fashion-mnist", "cifar10") and evaluate it
    on the test set.

    ``model``: a registry name ("lenet5"), your ``nn.Module`` (trained in place, from the
    weights it has) or its class / a function building it (built under ``seed``, so the run
    is reproducible: the same network as a registry model trains identically). ``limit``:
    the first N training images only. ``out``: the run folder (default a fresh one under
    ``runs/``, named after ``name`` or the model); ``resume=True`` continues the run in
    ``out`` exactly. ``live``: redraw the curves after every epoch (default: in a notebook).
    ``settings``: lr, batch_size, optimizer, schedule, seed, amp, val_size, translate, hflip,
    image_size, test_limit, ...
    """
    task_settings, optim_settings = split_settings(settings, TASK_SETTINGS, OPTIM_SETTINGS)
    if "data_root" in task_settings:
        task_settings["data_root"] = absolute(task_settings["data_root"])
    custom = not isinstance(model, str)  # a registry name, or a network of the user's
    factory = None
    if custom:
        factory = network_factory(model)  # called by the lab under the run's seed
        # the class names the run; a factory's is learnt from one network it builds
        named = model if isinstance(model, (nn.Module, type)) else factory()
        architecture, module = (named.__name__ if isinstance(named, type)
                                else type(named).__name__, qualified_name(named))
    else:
        architecture, module = model, None
    label = name or architecture  # what the run folder and the curves are called
    config = ClassifyConfig(dataset=dataset, model=architecture, module=module, limit=limit,
                            **task_settings)
    optim = OptimConfig(epochs=epochs, **optim_settings)
    out = run_folder(out, resume, f"{label}-{dataset}")
    curves = live_curves(live, f"{label} on {dataset}", out, resume)
    lab = ClassifyLab(factory)
    if resume:
        check_resumable(classify_run(config, optim), lab, out)
    train_run(classify_run(config, optim), lab, out, resume, device, log=log,
              progress=progress, download=download, on_epoch=curves)
    return Run(Path(out), lab.built if custom else None, model if custom else None)


def compare(runs: list[Run], metric: str = "val_acc") -> Picture:
    """Several runs' ``metric`` per epoch in one picture ("val_acc", "val_loss",
    "train_loss", ...), a line per run named after its folder."""
    return compare_runs(runs, metric, f"{metric} per epoch")

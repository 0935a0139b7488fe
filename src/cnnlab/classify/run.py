"""``train``: any network (a registry name or the student's own ``nn.Module``) on a dataset in
one call, with live curves in a notebook; returns a ``Run`` that shows, evaluates and
predicts."""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from cnnlab.classify.classifier import Classifier, load
from cnnlab.classify.evaluate import Evaluation
from cnnlab.classify.predict import Predictions
from cnnlab.classify.training import ClassifyConfig, ClassifyLab, classify_run
from cnnlab.engine.config import OptimConfig
from cnnlab.engine.lab import train_run
from cnnlab.engine.live import LiveCurves, in_notebook
from cnnlab.engine.network import is_user_network, network_factory, qualified_name
from cnnlab.engine.plotting import Picture
from cnnlab.engine.rundir import RunDir, curves_figure
from cnnlab.errors import ConfigError

# settings train() takes by keyword: the recipe's (ClassifyConfig, OptimConfig) fields
TASK_SETTINGS = tuple(f.name for f in dataclasses.fields(ClassifyConfig)
                      if f.name not in ("dataset", "model", "module", "limit"))
OPTIM_SETTINGS = tuple(f.name for f in dataclasses.fields(OptimConfig) if f.name != "epochs")
# names other libraries use for the same settings (Keras, Hugging Face, d2l)
ALIASES = {"learning_rate": "lr", "lrate": "lr", "num_epochs": "epochs", "batch": "batch_size",
           "optim": "optimizer", "scheduler": "schedule", "wd": "weight_decay",
           "num_train": "limit", "max_images": "limit", "precision": "amp"}


class Run:
    """A training run's folder and what came out of it: ``history`` (one row per epoch),
    ``results`` (test accuracy of the last weights), ``curves()``, ``evaluate()`` and
    ``predict()`` with the trained network."""

    def __init__(self, path: Path, network: nn.Module | None = None, model: object = None):
        self.path = Path(path)
        self._network, self._model = network, model
        self._classifier: Classifier | None = None

    @property
    def history(self) -> list[dict]:
        return RunDir(self.path).read_metrics()

    @property
    def results(self) -> dict[str, Any]:
        from cnnlab.engine.config import read_config_file

        path = self.path / "results.json"
        return read_config_file(path) if path.is_file() else {}

    @property
    def checkpoint(self) -> Path:
        """The last epoch's checkpoint (weights, optimizer state and model card)."""
        return RunDir(self.path).checkpoint("last")

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

    def curves(self) -> Picture:
        """Loss and accuracy per epoch, training and validation."""
        rows = self.history
        if not rows:
            raise ConfigError(f"{self.path}: no epoch finished yet", parameter="run")
        return Picture(curves_figure(rows, self.path.name), self.path.name)

    def evaluate(self, dataset: str | None = None, **options) -> Evaluation:
        """Accuracy, confusion matrix and mistakes of the last weights on the test set (see
        ``Classifier.evaluate`` for the options)."""
        return self.classifier().evaluate(dataset, **options)

    def predict(self, images: object, *, top_k: int = 3) -> Predictions:
        """Top classes of images (files, PIL images, uint8 arrays) by the last weights."""
        return self.classifier().predict(images, top_k=top_k)

    def __repr__(self) -> str:
        rows, results = self.history, self.results
        done = f"{len(rows)} epoch(s)"
        if "test_accuracy" in results:
            done += f", test accuracy {100 * results['test_accuracy']:.2f}%"
        return f"Run('{self.path}': {done})"

    def _repr_png_(self) -> bytes | None:
        return self.curves().png() if self.history else None


def _settings(settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keyword settings split into the task's and the optimiser's; a typo is one line that
    suggests the right name."""
    task = {k: v for k, v in settings.items() if k in TASK_SETTINGS}
    optim = {k: v for k, v in settings.items() if k in OPTIM_SETTINGS}
    unknown = sorted(set(settings) - set(task) - set(optim))
    if unknown:
        name = unknown[0]
        close = [ALIASES[name]] if name in ALIASES else difflib.get_close_matches(
            name, TASK_SETTINGS + OPTIM_SETTINGS, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ConfigError(f"is not a setting of train(); {hint}settings: "
                          f"{', '.join(TASK_SETTINGS + OPTIM_SETTINGS)}", parameter=name)
    return task, optim


def fresh_run_folder(name: str, root: str | os.PathLike = "runs") -> Path:
    """``runs/NAME``, or ``runs/NAME-2``, ``-3``... : the first that holds no run yet."""
    root = Path(root)
    for index in range(1, 10_000):
        path = root / (name if index == 1 else f"{name}-{index}")
        if not (path / "config.json").exists() and not RunDir(path).checkpoint("last").exists():
            return path
    raise ConfigError(f"{root}: no free run folder name for {name}", parameter="out")


def train(model: object, dataset: str = "fashion-mnist", *, epochs: int = 10,
          limit: int | None = None, out: str | os.PathLike | None = None,
          resume: bool = False, device: str = "auto", download: bool = False,
          live: bool | None = None, progress: bool = True,
          log: Callable[[str], None] = print, **settings: Any) -> Run:
    """Train ``model`` on ``dataset`` ("mnist", "fashion-mnist", "cifar10") and evaluate it
    on the test set.

    ``model``: a registry name ("lenet5"), your ``nn.Module`` (trained in place, from the
    weights it has) or its class / a function building it (built under ``seed``, so the run
    is reproducible: the same network as a registry model trains identically). ``limit``:
    the first N training images only. ``out``: the run folder (default a fresh one under
    ``runs/``); ``resume=True`` continues the run in ``out`` exactly. ``live``: redraw the
    curves after every epoch (default: in a notebook). ``settings``: lr, batch_size,
    optimizer, schedule, seed, amp, val_size, translate, hflip, image_size, test_limit, ...
    """
    task_settings, optim_settings = _settings(settings)
    if task_settings.get("data_root") is not None:  # saved with the run: absolute, as text
        task_settings["data_root"] = str(Path(task_settings["data_root"]).expanduser()
                                         .resolve())
    custom = is_user_network(model)
    built: list[nn.Module] = []  # the network train_run builds (under the run's seed)
    factory = None
    if custom:
        make = network_factory(model)
        # the class names the run; a factory's is learnt from one network it builds
        named = model if isinstance(model, (nn.Module, type)) else make()
        name, module = (named.__name__ if isinstance(named, type) else type(named).__name__,
                        qualified_name(named))

        def factory() -> nn.Module:
            built.append(make())
            return built[-1]
    else:
        name, module = model, None
    config = ClassifyConfig(dataset=dataset, model=name, module=module, limit=limit,
                            **task_settings)
    optim = OptimConfig(epochs=epochs, **optim_settings)
    if out is None:
        if resume:
            raise ConfigError("needs the run folder to continue (out=...)", parameter="resume")
        out = fresh_run_folder(f"{name}-{dataset}")
    curves = None
    if live if live is not None else in_notebook():
        curves = LiveCurves(f"{name} on {dataset}",
                            RunDir(out).read_metrics() if resume else None)
    lab = ClassifyLab(factory)
    train_run(classify_run(config, optim), lab, out, resume, device, log=log,
              progress=progress, download=download, on_epoch=curves)
    return Run(Path(out), built[-1] if built else None, model if custom else None)

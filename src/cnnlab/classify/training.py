"""Train a classifier: the classification lab's parts for the engine's ``train_run``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.classify.card import (
    build_classifier,
    check_input_size,
    classifier_card,
    preprocess_of,
)
from cnnlab.classify.choices import SWEEP_VAL_SIZE
from cnnlab.classify.data import Augment, load_classify_data
from cnnlab.classify.settings import ClassifyConfig
from cnnlab.classify.task import ClassifyTask
from cnnlab.engine.card import ModelCard
from cnnlab.engine.config import OptimConfig, RunConfig, Unused
from cnnlab.engine.distributed import SINGLE_PROCESS, DistInfo
from cnnlab.engine.lab import recipe_of, train_run
from cnnlab.engine.loop import FitResult, evaluate
from cnnlab.errors import ConfigError


class ClassifyLab:
    """MNIST, Fashion-MNIST and CIFAR-10 classifiers on in-memory tensors. ``network`` gives
    a network defined in Python (see ``engine.network``) in place of a registry model."""

    name = "classify"
    config_class = ClassifyConfig
    channels_last = True
    machine_settings = ("data_root",)
    objective = (f"val_{ClassifyTask.best_metric}", "maximize")

    def __init__(self, network: Callable[[], nn.Module] | None = None):
        self.network = network
        self.built: nn.Module | None = None  # the network build_model gave (the trained one)

    @staticmethod
    def upgrade(section: dict[str, Any]) -> dict[str, Any]:
        return section  # the settings' names have not changed since the first release

    @staticmethod
    def auto_amp(device: torch.device) -> str:
        """fp32: bf16 training of the classifiers has not been checked against fp32."""
        return "none"

    @staticmethod
    def check(run: RunConfig) -> None:
        run.task.validate()  # the settings' rules and combinations: all a classifier has

    @staticmethod
    def unused(run: RunConfig) -> list[Unused]:
        return run.optim.unused()

    @staticmethod
    def check_sweep(run: RunConfig) -> None:
        if run.task.val_size == 0:
            raise ConfigError(f"0: the sweep would choose its settings on the test set; hold "
                              f"out training images instead (e.g. {SWEEP_VAL_SIZE})",
                              parameter="val_size")

    def resolve(self, run: RunConfig, resume: bool, log: Callable[[str], None]
                ) -> tuple[RunConfig, None]:
        config = run.task
        self.check(run)
        if config.module and self.network is None:
            raise ConfigError(f"this run trains {config.model}, a network defined in Python "
                              f"({config.module}); train or resume it from Python with "
                              f"cnnlab.classify.train({config.model}, ...)")
        return run, None

    @staticmethod
    def card(run: RunConfig) -> ModelCard:
        """The card every checkpoint of this run carries (fit adds the epoch's metrics)."""
        config, optim = run.task, run.optim
        validation = (f"{config.val_size} images held out of the {config.dataset} training set "
                      f"(seed {optim.seed})" if config.val_size
                      else f"{config.dataset} official test set")
        training = {"recipe": recipe_of(run, CLASSIFY), "validation": validation}
        if config.data_root:  # where eval finds the test set by default
            training["data_root"] = config.data_root
        return classifier_card(config.dataset, config.model, config.model_kwargs,
                               config.image_size, training, config.module)

    def build_model(self, card: ModelCard, start: None, log: Callable[[str], None]
                    ) -> nn.Module:
        # a bad model option or a network that cannot take the input fails before the data
        model = build_classifier(card) if self.network is None else self.network()
        check_input_size(model, card)
        self.built = model
        return model

    @staticmethod
    def build_task(run: RunConfig, card: ModelCard, device: torch.device, info: DistInfo,
                   download: bool, log: Callable[[str], None]) -> ClassifyTask:
        config = run.task
        data = load_classify_data(config.dataset, device, config.data_root, download,
                                  config.val_size, run.optim.seed, limit=config.limit,
                                  test_limit=config.test_limit)
        return ClassifyTask(data.train, data.val, data.test, preprocess_of(card),
                            run.optim.batch_size, Augment(config.translate, config.hflip),
                            config.label_smoothing, info)

    @staticmethod
    def title(run: RunConfig) -> str:
        return f"{run.task.model} on {run.task.dataset}"

    @staticmethod
    def results(run: RunConfig, fitted: FitResult, task: ClassifyTask, model: nn.Module,
                device: torch.device, info: DistInfo, log: Callable[[str], None]) -> dict:
        """The final weights on the official test set."""
        if task.validates_on_test and fitted.last_val:  # validation was this very test pass
            sums = fitted.last_val
        else:
            sums = evaluate(model, task, task.test_batches(), device, run.optim.amp, info)
        results = {"test_accuracy": sums["correct"] / sums["count"],
                   "test_loss": sums["loss_sum"] / sums["count"],
                   "test_correct": int(sums["correct"]), "test_count": int(sums["count"])}
        if info.is_main:
            log(f"Test accuracy (last epoch): {results['test_correct']}/{results['test_count']} "
                f"({100 * results['test_accuracy']:.2f}%)")
        return results


CLASSIFY = ClassifyLab()


def classify_run(config: ClassifyConfig, optim: OptimConfig) -> RunConfig:
    return RunConfig("classify", config, optim)


def train_classifier(config: ClassifyConfig, optim: OptimConfig, out: str | Path,
                     resume: bool = False, device: str = "auto", download: bool = False,
                     info: DistInfo = SINGLE_PROCESS, log: Callable[[str], None] = print,
                     progress: bool = True, stop_after: int | None = None) -> dict:
    """Train, then evaluate the last weights on the official test set; returns the results."""
    return train_run(classify_run(config, optim), CLASSIFY, out, resume, device, info, log,
                     progress, stop_after, download)


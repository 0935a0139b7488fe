"""Train a classifier: config -> data on device -> model -> shared loop -> test metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from cnnlab.classify.card import build_classifier, classifier_card, preprocess_of
from cnnlab.classify.data import Augment, load_classify_data
from cnnlab.classify.task import ClassifyTask
from cnnlab.data.vision import get_spec
from cnnlab.engine.atomic import atomic_write_json
from cnnlab.engine.card import ModelCard
from cnnlab.engine.device import prepare_model, seed_everything, select_device
from cnnlab.engine.distributed import SINGLE_PROCESS, DistInfo
from cnnlab.engine.loop import FitResult, OptimConfig, evaluate, fit, optim_config_dict
from cnnlab.engine.rundir import RunDir
from cnnlab.errors import ConfigError


@dataclass
class ClassifyConfig:
    """Everything needed to rebuild the data pipeline and the model of a run."""

    dataset: str = "fashion-mnist"
    model: str = "simple_cnn"
    model_kwargs: dict = field(default_factory=dict)
    image_size: int | None = None  # None: the model's registered input size
    val_size: int = 0  # 0: validate on the official test set, as the course does
    translate: int = 0  # random translation in pixels (0 = off)
    hflip: bool = False  # random horizontal flips (only where label-preserving)
    label_smoothing: float = 0.0
    data_root: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ClassifyConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def run_recipe(classify: dict, optim: dict) -> dict:
    """A run's settings as its card records them: the machine's data folder left out."""
    return {"classify": {k: v for k, v in classify.items() if k != "data_root"}, "optim": optim}


def run_card(config: ClassifyConfig, optim: OptimConfig) -> ModelCard:
    """The card every checkpoint of this run carries (fit adds the epoch's metrics)."""
    validation = (f"{config.val_size} images held out of the {config.dataset} training set "
                  f"(seed {optim.seed})" if config.val_size
                  else f"{config.dataset} official test set")
    training = {"recipe": run_recipe(config.to_dict(), optim_config_dict(optim)),
                "validation": validation}
    if config.data_root:  # where eval finds the test set by default
        training["data_root"] = config.data_root
    return classifier_card(config.dataset, config.model, config.model_kwargs,
                           config.image_size, training)


def train_classifier(config: ClassifyConfig, optim: OptimConfig, out: Path, resume: bool = False,
                     device: str = "auto", download: bool = False, info: DistInfo = SINGLE_PROCESS,
                     log: Callable[[str], None] = print, progress: bool = True,
                     stop_after: int | None = None) -> dict:
    """Train, then evaluate the last weights on the official test set; returns the results."""
    spec = get_spec(config.dataset)
    if config.hflip and not spec.hflip:
        raise ConfigError(f"--hflip: horizontal flips change the meaning of {spec.name} labels")
    torch_device = select_device(device)
    seed_everything(optim.seed + info.rank)
    card = run_card(config, optim)
    preprocess = preprocess_of(card)
    network = build_classifier(card)  # a bad model option fails before the data is read
    data = load_classify_data(config.dataset, torch_device, config.data_root, download,
                              config.val_size, optim.seed)
    model = prepare_model(network, torch_device, optim.compile)
    if info.enabled:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[info.local_rank] if torch_device.type == "cuda" else None)
    augment = Augment(config.translate, config.hflip)
    task = ClassifyTask(data.train, data.val or data.test, preprocess, optim.batch_size,
                        augment, config.label_smoothing, info)
    run_dir = RunDir(out)
    full_config = {"lab": "classify", "classify": config.to_dict(),
                   "optim": optim_config_dict(optim), "world_size": info.world_size,
                   "title": f"{config.model} on {config.dataset}"}
    result: FitResult = fit(model, task, optim, run_dir, full_config, torch_device, resume,
                            info, log, progress, stop_after=stop_after, card=card)
    if data.val is None and result.last_val:  # validation was this very test pass
        sums = result.last_val
    else:
        test_task = ClassifyTask(data.train, data.test, preprocess, optim.batch_size, None, 0.0,
                                 info)
        sums = evaluate(model, test_task, test_task.val_batches(), torch_device, optim.amp, info)
    results = {"test_accuracy": sums["correct"] / sums["count"],
               "test_loss": sums["loss_sum"] / sums["count"],
               "test_correct": int(sums["correct"]), "test_count": int(sums["count"]),
               "epochs": len(result.history), "best": result.best,
               # wall time of the epochs, per-epoch validation included
               "epoch_seconds_total": round(sum(r["seconds"] for r in result.history), 2)}
    if info.is_main:
        atomic_write_json(run_dir.path / "results.json", results)
        log(f"Test accuracy (last epoch): {results['test_correct']}/{results['test_count']} "
            f"({100 * results['test_accuracy']:.2f}%)")
    return results

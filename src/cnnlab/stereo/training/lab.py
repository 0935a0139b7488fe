"""Train or fine-tune PSMNet: the stereo lab's parts for the engine's ``train_run``."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.engine.card import ModelCard
from cnnlab.engine.checkpoint import load_model_weights
from cnnlab.engine.config import OptimConfig, RunConfig, Unused
from cnnlab.engine.distributed import SINGLE_PROCESS, DistInfo
from cnnlab.engine.lab import recipe_of, train_run
from cnnlab.engine.loop import FitResult, evaluate
from cnnlab.engine.memory import keep_freed_memory
from cnnlab.engine.precision import native_precisions
from cnnlab.errors import ConfigError, DataError
from cnnlab.stereo.data.datasets import (
    StereoDataset,
)
from cnnlab.stereo.data.preprocess import Normalize
from cnnlab.stereo.data.registry import open_pairs
from cnnlab.stereo.evaluation.metrics import rates
from cnnlab.stereo.models import PSMNetConfig
from cnnlab.stereo.training.pipeline import (
    Augmentor,
    TrainingPairs,
    ValidationPairs,
    read_validation,
    train_loader,
)
from cnnlab.stereo.training.settings import ARCHITECTURE, StereoConfig
from cnnlab.stereo.training.task import StereoTask
from cnnlab.stereo.weights.card import LEGACY_KWARGS, build_stereo_model, psmnet_card
from cnnlab.stereo.weights.registry import (
    STEREO_WEIGHTS,
    get_weights,
    load_weights,
    reads_as_a_name,
)

# real datasets up to this many pairs stay decoded in memory when read in the training process
# (KITTI 2015's 200 training pairs: ~1.1 GB)
CACHED_PAIRS = 500
CROP_CHECK_PAIRS = 200  # pairs whose sizes the crop is compared with


def default_workers() -> int:
    """Data-loading worker processes: none on a machine of 2 cores or fewer, where a worker
    takes a core from the network (bench/stereo_train_step.py), else half the cores, up to 4."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 0 if (cores or 1) <= 2 else min(4, (cores or 1) // 2)


def _registered(init: str | None) -> bool:
    return reads_as_a_name(init) and init in STEREO_WEIGHTS


def published_milestones(dataset: str) -> list[int]:
    """The published step schedule: KITTI fine-tuning drops 1e-3 to 1e-4 after epoch 200;
    SceneFlow (and the rest) keep a constant rate."""
    return [200] if dataset.startswith("kitti") else []


def with_published_milestones(run: RunConfig) -> RunConfig:
    """``run`` with the published drops as the step schedule's milestones where none are
    given (the lab's default, for the command line and Python alike)."""
    if run.optim.schedule != "step" or run.optim.milestones:
        return run
    return replace(run, optim=replace(run.optim, milestones=tuple(
        published_milestones(run.task.dataset))))


def check_sweep_recipe(config: StereoConfig) -> None:
    """A sweep chooses its settings on validation pairs: a recipe without them, or whose
    validation pairs are a test split (SceneFlow's), is refused."""
    if config.dataset == "sceneflow":
        raise ConfigError("sceneflow: its validation pairs are the FlyingThings3D TEST split, so "
                          "a sweep would choose on the test set; sweep on synthetic, KITTI or a "
                          "folder with `val_list`", parameter="dataset")
    if config.val_count == 0 or config.dataset == "middlebury" or (
            config.dataset == "folder" and not config.val_list):
        raise ConfigError("a sweep chooses on validation pairs, and this recipe has none: give "
                          "`val_count` > 0 (synthetic, KITTI) or `val_list` (folder)")


def model_config(options: dict, init_card: ModelCard | None = None) -> PSMNetConfig:
    """The architecture of a new run: explicit ``options``, else the --init weights' card (so
    fine-tuning the official weights keeps their align_corners), else the defaults."""
    base = dict(init_card.kwargs) if init_card is not None else {}
    if init_card is not None and init_card.architecture != "psmnet":
        raise ConfigError(f": {init_card.architecture} weights cannot seed PSMNet",
                          parameter="init")
    given = {k: v for k, v in options.items() if v is not None}
    if init_card is not None:  # weights fit only the layers they were trained as
        shaped = [k for k in ("variant", "blocks", "dilations", "spp_pools")
                  if k in given and _plain(given[k]) != _plain(base.get(k, given[k]))]
        if shaped:
            raise ConfigError(f"{_plain(given[shaped[0]])}: the `init` weights were trained "
                              f"with {_plain(base[shaped[0]])}, and fine-tuning keeps their "
                              "layers; leave it out (only `max_disparity` and `align_corners` "
                              "may differ from theirs)", parameter=shaped[0])
    base.update(given)
    try:
        return PSMNetConfig(**base)
    except (TypeError, ValueError) as exc:
        source = " and `init`'s model card" if init_card is not None else ""
        raise ConfigError(f"architecture options{source}: {exc}") from None


def _plain(value: Any) -> Any:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value


def _datasets(config: StereoConfig, max_disparity: int
              ) -> tuple[StereoDataset, StereoDataset | None]:
    """(training pairs, validation pairs or None) of the configured dataset."""
    def pairs(split: str, **options: Any) -> StereoDataset:
        return open_pairs(config.dataset, split, data_root=config.data_root,
                          synthetic_size=config.synthetic_size, max_disparity=max_disparity,
                          **options)

    if config.dataset == "synthetic":
        return pairs("train"), pairs("val", count=config.val_count)
    if config.dataset == "folder":  # users' pairs; validation only from --val-list
        train = pairs("all", folder={k: getattr(config, k) for k in (
            "left", "right", "gt", "pair_list", "gt_format", "gt_scale")})
        val = (pairs("all", folder={"pair_list": config.val_list, "gt_format": config.gt_format,
                                    "gt_scale": config.gt_scale}) if config.val_list else None)
        return train, val
    if config.dataset == "middlebury":  # no published split: every scene trains, none validates
        return pairs("all"), None
    train = pairs("train")
    try:
        return train, pairs("test" if config.dataset == "sceneflow" else "val")
    except DataError:  # the split is empty here (e.g. only a few KITTI frames are present)
        return train, None


class StereoLab:
    """PSMNet on synthetic, SceneFlow, KITTI or Middlebury pairs, from scratch or --init."""

    name = "stereo"
    config_class = StereoConfig
    channels_last = False  # PSMNet sets its own layouts (channels_last 2-D, _3d for 3-D convs)
    machine_settings = ("data_root", "weights_root", "workers")
    objective = (f"val_{StereoTask.best_metric}", "minimize")

    def __init__(self, network: Callable[[], nn.Module] | None = None):
        """``network``: gives the PSMNet to train (a student's parts in it) in place of the
        registry's."""
        self.network = network
        self.built: nn.Module | None = None  # the network build_model gave (the trained one)

    @staticmethod
    def upgrade(section: dict[str, Any]) -> dict[str, Any]:
        """Runs before the redesign kept the architecture as a ``model`` dict (``maxdisp``)
        and an unused ``synthetic_max_disparity``."""
        model = section.pop("model", None) or {}
        section.update({LEGACY_KWARGS.get(k, k): v for k, v in model.items()
                        if LEGACY_KWARGS.get(k, k) in ARCHITECTURE})
        section.pop("synthetic_max_disparity", None)
        return section

    @staticmethod
    def auto_amp(device: torch.device) -> str:
        """bf16 on a CPU that computes it natively: 2x faster a step, and in fine-tuning the
        published network and training the cpu-small recipe from scratch, bf16's mean over
        two seeds stayed within the two seeds' spread at every epoch but one (where it was
        better) (bench/stereo_amp_convergence.py). fp32 elsewhere (not checked on CUDA)."""
        return "bf16" if device.type == "cpu" and "bf16" in native_precisions(device) else "none"

    @staticmethod
    def check(run: RunConfig) -> None:
        """The architecture the options give (over the defaults; --init's card may fill the
        rest) and the --init weights' name, without reading any weights."""
        config = run.task
        model_config(config.architecture())
        if reads_as_a_name(config.init):
            get_weights(config.init)  # a registered name: known, else a one-line error

    @staticmethod
    def check_sweep(run: RunConfig) -> None:
        check_sweep_recipe(run.task)

    @staticmethod
    def unused(run: RunConfig) -> list[Unused]:
        config, default = run.task, StereoConfig()
        found = with_published_milestones(run).optim.unused()
        if config.dataset != "synthetic" and config.synthetic_size != default.synthetic_size:
            found.append(Unused("synthetic_size", "only `dataset` synthetic draws scenes",
                                "dataset"))
        if config.weights_root and not _registered(config.init):
            found.append(Unused("weights_root", "only `init` given by a registered name looks "
                                                "weights up there", "init"))
        return found

    def resolve(self, run: RunConfig, resume: bool, log: Callable[[str], None]
                ) -> tuple[RunConfig, tuple[dict, ModelCard] | None]:
        """Every architecture value set (from the options, --init's card, the defaults), and
        the --init weights to start from (none when resuming: the run has its own)."""
        config = run.task
        self.check(run)
        run = with_published_milestones(run)
        if config.module and self.network is None:
            raise ConfigError(f"this run trains {config.module}, with parts defined in "
                              "Python; train or resume it from Python with "
                              "cnnlab.stereo.train(cnnlab.stereo.psmnet(...), ...)")
        start = None
        if config.init and not resume:
            start = load_weights(config.init, config.weights_root, log=log)
        architecture = model_config(config.architecture(), start[1] if start else None)
        values = {k: tuple(v) if isinstance(v, list) else v
                  for k, v in architecture.to_dict().items()}
        workers = default_workers() if config.workers is None else config.workers
        return replace(run, task=replace(config, workers=workers, **values)), start

    @staticmethod
    def card(run: RunConfig) -> ModelCard:
        """The card every checkpoint of this run carries (fit adds the epoch's metrics)."""
        config = run.task
        if config.dataset == "synthetic":
            data = (f"cnnlab's synthetic stereo scenes ({config.synthetic_size[0]}x"
                    f"{config.synthetic_size[1]})")
        else:
            data = f"{config.dataset} training split"
        if config.init:
            data += f", starting from {config.init}"
        recipe = recipe_of(run, STEREO)
        validation = (f"{config.val_count} held-out synthetic scenes"
                      if config.dataset == "synthetic" else f"{config.dataset} validation pairs")
        return psmnet_card(model_config(config.architecture()),
                           {"data": data, "dataset": config.dataset, "recipe": recipe,
                            "validation": validation}, module=config.module)

    def build_model(self, card: ModelCard, start: tuple[dict, ModelCard] | None,
                    log: Callable[[str], None]) -> nn.Module:
        # PSMNet's 3-D activations are ~50-100 MB each: without this every one is mapped and
        # page-faulted afresh at each step (most of the 2x of bench/stereo_train_step.py, bf16)
        keep_freed_memory()
        model = build_stereo_model(card) if self.network is None else self.network()
        self.built = model
        if start is not None:
            state, init_card = start
            load_model_weights(model, state, init_card.source["file"])
            log(f"Fine-tuning from {init_card.name or init_card.source['file']} "
                f"(align_corners={card.kwargs['align_corners']})")
        return model

    @staticmethod
    def build_task(run: RunConfig, card: ModelCard, device: torch.device, info: DistInfo,
                   download: bool, log: Callable[[str], None]) -> StereoTask:
        config = run.task
        max_disparity = card.kwargs["max_disparity"]
        normalize = Normalize(card.preprocess["mean"], card.preprocess["std"])
        train_set, val_set = _datasets(config, max_disparity)
        # headers of the first pairs only: SceneFlow has tens of thousands
        smallest = (train_set.min_size(limit=CROP_CHECK_PAIRS)
                    if info.is_main and config.dataset != "synthetic" else None)
        if smallest is not None and (config.crop[0] > smallest[0] or config.crop[1] > smallest[1]):
            log(f"note: --crop {config.crop[0]}x{config.crop[1]} is larger than the smallest "
                f"{config.dataset} pair ({smallest[0]}x{smallest[1]}): what lies outside a pair "
                "is zero padding with no ground truth, which costs time and teaches nothing")
        cache = (config.workers == 0 and config.dataset != "synthetic"
                 and len(train_set) <= CACHED_PAIRS)
        pairs = TrainingPairs(train_set, Augmentor(tuple(config.crop), config.jitter),
                              config.samples_per_epoch, max_disparity, run.optim.seed, normalize,
                              cache)
        loader, sampler = train_loader(pairs, run.optim.batch_size, info, config.workers,
                                       pin_memory=device.type == "cuda")
        val_pairs = None
        if val_set is not None and config.val_count:
            val_pairs = read_validation(ValidationPairs(val_set, config.val_count, max_disparity,
                                                        normalize), info, config.workers)
        elif config.val_count:
            log(f"note: {config.dataset} has no validation pairs here; training without "
                "validation")
        return StereoTask(loader, sampler, val_pairs, device)

    @staticmethod
    def title(run: RunConfig) -> str:
        return f"PSMNet {run.task.variant} on {run.task.dataset}"

    @staticmethod
    def results(run: RunConfig, fitted: FitResult, task: StereoTask, model: nn.Module,
                device: torch.device, info: DistInfo, log: Callable[[str], None]) -> dict:
        """The final weights on the validation pairs (where there are any)."""
        if task.val_pairs is None:
            return {}
        sums = fitted.last_val or evaluate(model, task, task.val_batches(), device,
                                           run.optim.amp, info)
        return {"val": rates(sums)} if sums.get("pixels") else {}


STEREO = StereoLab()


def stereo_run(config: StereoConfig, optim: OptimConfig) -> RunConfig:
    return RunConfig("stereo", config, optim)


def train_stereo(config: StereoConfig, optim: OptimConfig, out: str | Path, resume: bool = False,
                 device: str = "auto", info: DistInfo = SINGLE_PROCESS,
                 log: Callable[[str], None] = print, progress: bool = True,
                 stop_after: int | None = None) -> dict:
    """Train, then evaluate the last weights on the validation pairs; returns the results."""
    return train_run(stereo_run(config, optim), STEREO, out, resume, device, info, log,
                     progress, stop_after)

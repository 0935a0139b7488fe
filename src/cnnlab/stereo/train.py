"""Train or fine-tune PSMNet on synthetic, SceneFlow, KITTI or Middlebury data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from cnnlab.engine.atomic import atomic_write_json
from cnnlab.engine.card import ModelCard
from cnnlab.engine.checkpoint import load_model_weights
from cnnlab.engine.device import prepare_model, seed_everything, select_device
from cnnlab.engine.distributed import SINGLE_PROCESS, DistInfo
from cnnlab.engine.loop import OptimConfig, evaluate, fit, optim_config_dict
from cnnlab.engine.rundir import RunDir
from cnnlab.errors import ConfigError, DataError
from cnnlab.stereo.card import build_stereo_model, psmnet_card
from cnnlab.stereo.datasets import StereoDataset, SyntheticStereo, open_dataset
from cnnlab.stereo.metrics import rates
from cnnlab.stereo.models import PSMNetConfig
from cnnlab.stereo.task import StereoTask
from cnnlab.stereo.weights import load_weights

VAL_SEED = 9_999  # held-out synthetic scenes never drawn for training (training uses seed 0+)


@dataclass
class StereoConfig:
    dataset: str = "synthetic"
    data_root: str | None = None
    # PSMNetConfig options; those absent (or None) come from --init's card, else the defaults
    model: dict = field(default_factory=dict)
    crop: tuple[int, int] = (256, 512)
    samples_per_epoch: int = 400
    val_count: int = 8
    jitter: bool = True
    synthetic_size: tuple[int, int] = (256, 512)
    synthetic_max_disparity: float | None = None  # default: 3/4 of maxdisp
    init: str | None = None  # weights to fine-tune from: registered name, run, file
    weights_root: str | None = None  # where registered --init weights are looked up

    def to_dict(self) -> dict:
        data = asdict(self)
        data["crop"], data["synthetic_size"] = list(self.crop), list(self.synthetic_size)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> StereoConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("crop", "synthetic_size"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)


def published_milestones(dataset: str) -> list[int]:
    """The published step schedule: KITTI fine-tuning drops 1e-3 to 1e-4 after epoch 200;
    SceneFlow (and the rest) keep a constant rate."""
    return [200] if dataset.startswith("kitti") else []


def model_config(options: dict, init_card: ModelCard | None = None) -> PSMNetConfig:
    """The architecture of a new run: explicit ``options``, else the --init weights' card (so
    fine-tuning the official weights keeps their align_corners), else the defaults."""
    base = dict(init_card.kwargs) if init_card is not None else {}
    if init_card is not None and init_card.architecture != "psmnet":
        raise ConfigError(f"--init: {init_card.architecture} weights cannot seed PSMNet")
    base.update({k: v for k, v in options.items() if v is not None})
    try:
        return PSMNetConfig(**base)
    except (TypeError, ValueError) as exc:
        source = " and --init's model card" if init_card is not None else ""
        raise ConfigError(f"architecture options{source}: {exc}") from None


def run_card(config: StereoConfig, optim: OptimConfig) -> ModelCard:
    """The card every checkpoint of this run carries (fit adds the epoch's metrics)."""
    if config.dataset == "synthetic":
        data = f"cnnlab's synthetic stereo scenes ({config.synthetic_size[0]}x" \
               f"{config.synthetic_size[1]})"
    else:
        data = f"{config.dataset} training split"
    if config.init:
        data += f", starting from {config.init}"
    recipe = {"stereo": {k: v for k, v in config.to_dict().items()
                         if k not in ("data_root", "weights_root")},
              "optim": optim_config_dict(optim)}
    validation = (f"{config.val_count} held-out synthetic scenes" if config.dataset == "synthetic"
                  else f"{config.dataset} validation pairs")
    return psmnet_card(PSMNetConfig(**config.model),
                       {"data": data, "dataset": config.dataset, "recipe": recipe,
                        "validation": validation})


def _datasets(config: StereoConfig, maxdisp: int) -> tuple[StereoDataset, list]:
    if config.dataset == "synthetic":
        height, width = config.synthetic_size
        max_d = config.synthetic_max_disparity or 0.75 * maxdisp
        train = SyntheticStereo(10**6, height, width, max_d, seed=0)
        val = SyntheticStereo(config.val_count, height, width, max_d, seed=VAL_SEED)
        return train, [val.load(i) for i in range(len(val))]
    if config.data_root is None:
        raise ConfigError(f"--data-root is required for {config.dataset}")
    if config.dataset == "middlebury":  # no published split: every scene trains, none validates
        return open_dataset("middlebury", config.data_root, "all"), []
    val_split = "test" if config.dataset == "sceneflow" else "val"
    train = open_dataset(config.dataset, config.data_root, "train")
    try:
        val_set = open_dataset(config.dataset, config.data_root, val_split)
    except DataError:  # the split is empty here (e.g. only a few KITTI frames are present)
        return train, []
    return train, [val_set.load(i) for i in range(min(len(val_set), config.val_count))]


def train_stereo(config: StereoConfig, optim: OptimConfig, out: Path, resume: bool = False,
                 device: str = "auto", info: DistInfo = SINGLE_PROCESS,
                 log: Callable[[str], None] = print, progress: bool = True,
                 stop_after: int | None = None) -> dict:
    """Train, then evaluate the last weights on the validation pairs; returns the results."""
    torch_device = select_device(device)
    seed_everything(optim.seed + info.rank)
    if any(c < 16 for c in config.crop):
        raise ConfigError(f"--crop {config.crop} is too small (at least 16x16)")
    init_state = init_card = None
    if config.init and not resume:
        init_state, init_card = load_weights(config.init, config.weights_root, log=log)
    if not resume:  # unset architecture options come from --init's card, else the defaults
        config = replace(config, model=model_config(config.model, init_card).to_dict())
    card = run_card(config, optim)
    model = build_stereo_model(card)
    if init_state is not None:
        load_model_weights(model, init_state, init_card.source["file"])
        log(f"Fine-tuning from {init_card.name or init_card.source['file']} "
            f"(align_corners={card.kwargs['align_corners']})")
    train_set, val_samples = _datasets(config, model.maxdisp)
    if not val_samples:
        log(f"note: {config.dataset} has no validation pairs here; training without validation")
    maxdisp = model.maxdisp
    # PSMNet sets its own layouts (channels_last for 2-D, channels_last_3d for 3-D convs)
    model = prepare_model(model, torch_device, optim.compile, channels_last=False)
    if info.enabled:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[info.local_rank] if torch_device.type == "cuda" else None)
    task = StereoTask(train_set, val_samples, config.crop, optim.batch_size,
                      config.samples_per_epoch, maxdisp, torch_device, info, config.jitter)
    full_config = {"lab": "stereo", "stereo": config.to_dict(), "optim": optim_config_dict(optim),
                   "world_size": info.world_size,
                   "title": f"PSMNet {config.model.get('variant')} on {config.dataset}"}
    run_dir = RunDir(out)
    result = fit(model, task, optim, run_dir, full_config, torch_device, resume, info, log,
                 progress, stop_after=stop_after, card=card)
    results = {"epochs": len(result.history), "best": result.best,
               # wall time of the epochs, per-epoch validation included
               "epoch_seconds_total": round(sum(r["seconds"] for r in result.history), 2)}
    if val_samples:  # the final weights' validation pass, unless a resumed run had nothing to do
        sums = result.last_val or evaluate(model, task, task.val_batches(), torch_device,
                                           optim.amp, info)
        results["val"] = rates(sums)
    if info.is_main:
        atomic_write_json(run_dir.path / "results.json", results)
    return results

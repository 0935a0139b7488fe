"""What PSMNet is trained on and how: the stereo lab's settings, torch-free, so that the command
line takes its flags' rules from them without loading torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnnlab.engine.rules import COUNT, POSITIVE, POSITIVE_INT, Rule, check_settings, choice, setting
from cnnlab.stereo.choices import (
    ARCHITECTURE_RULES,
    CROP,
    DATASETS,
    GT_FORMATS,
    PSMNET_STRIDE,
    SAMPLES_PER_EPOCH,
    SYNTHETIC_SIZE,
    VAL_COUNT,
    check_folder_options,
)

# the settings that are PSMNetConfig's fields (tests/test_rules.py compares them)
ARCHITECTURE = ("variant", "max_disparity", "blocks", "dilations", "spp_pools", "align_corners")


@dataclass
class StereoConfig:
    """What PSMNet is trained on and how; each value is checked against its rule when the
    settings are made (flags, config files, saved runs, sweeps and Python alike)."""

    dataset: str = setting("synthetic", choice(*DATASETS))
    data_root: str | None = None
    # architecture: None takes --init's card, else PSMNetConfig's default; resolved runs save
    # every value
    variant: str | None = setting(None, ARCHITECTURE_RULES["variant"])
    max_disparity: int | None = setting(None, ARCHITECTURE_RULES["max_disparity"])
    blocks: tuple[int, ...] | None = setting(None, ARCHITECTURE_RULES["blocks"])
    dilations: tuple[int, ...] | None = setting(None, ARCHITECTURE_RULES["dilations"])
    spp_pools: tuple[int, ...] | None = setting(None, ARCHITECTURE_RULES["spp_pools"])
    align_corners: bool | None = None
    crop: tuple[int, int] = setting(CROP, Rule(int, PSMNET_STRIDE).each_item(2))
    samples_per_epoch: int = setting(SAMPLES_PER_EPOCH, POSITIVE_INT)
    val_count: int = setting(VAL_COUNT, COUNT)
    jitter: bool = True
    synthetic_size: tuple[int, int] = setting(SYNTHETIC_SIZE, POSITIVE_INT.each_item(2))
    init: str | None = None  # weights to fine-tune from: registered name, run, file
    weights_root: str | None = None  # where registered --init weights are looked up
    workers: int | None = setting(None, COUNT)  # data-loading processes (None: default_workers())
    # --dataset folder: glob patterns or a list file (absolute), and validation pairs
    left: str | None = None
    right: str | None = None
    gt: str | None = None
    pair_list: str | None = None
    val_list: str | None = None
    gt_format: str = setting("auto", choice(*GT_FORMATS))
    gt_scale: float = setting(1.0, POSITIVE)
    # a PSMNet with a student's parts (cnnlab.stereo.psmnet(spp=..., hourglass=...)): what
    # they are; such a run is trained and resumed from Python, which passes the network
    module: str | None = None

    def __post_init__(self) -> None:
        check_settings(self)
        check_folder_options([self.dataset], vars(self))

    def architecture(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ARCHITECTURE if getattr(self, k) is not None}

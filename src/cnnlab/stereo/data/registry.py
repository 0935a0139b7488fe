"""One registry of stereo datasets by name, for training, evaluation and reports alike: the
official layouts (KITTI 2012/2015, SceneFlow, Middlebury), a user's own pairs ("folder") and
synthetic scenes with exact ground truth."""

from __future__ import annotations

import os
from typing import Any

from cnnlab.stereo.choices import DEFAULT_MAX_DISPARITY, SYNTHETIC_SIZE
from cnnlab.stereo.data.datasets import (
    VAL_SEED,
    StereoDataset,
    SyntheticStereo,
    dataset_root,
    open_dataset,
)
from cnnlab.stereo.data.folder import open_folder
from cnnlab.stereo.data.synthetic import scene_max_disparity

TRAINING_SCENES = 10**6  # synthetic training draws a fresh scene per sample


def open_pairs(name: str, split: str = "all", *, data_root: str | os.PathLike | None = None,
               folder: dict[str, Any] | None = None, count: int | None = None,
               synthetic_size: tuple[int, int] = SYNTHETIC_SIZE,
               max_disparity: int = DEFAULT_MAX_DISPARITY) -> StereoDataset:
    """The pairs of dataset ``name`` and ``split``: an official layout under ``data_root``
    (default: the folder ``cnnlab.setup()`` found), a user's folder (``folder``:
    ``open_folder``'s arguments), or synthetic scenes drawn within ``max_disparity`` (the
    training split endless, any other ``count`` held-out scenes)."""
    if name == "synthetic":
        height, width = synthetic_size
        training = split == "train"
        return SyntheticStereo(TRAINING_SCENES if training else count, height, width,
                               scene_max_disparity(max_disparity),
                               seed=0 if training else VAL_SEED)
    if name == "folder":
        return open_folder(**(folder or {}))
    return open_dataset(name, dataset_root(name, data_root), split)

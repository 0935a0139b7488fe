"""Stereo matching lab: PSMNet, stereo data formats and datasets, metrics, train/eval/predict.

The public face, for notebooks and scripts::

    import cnnlab.stereo as stereo

    model = stereo.load("psmnet-kitti2015")      # or a checkpoint, a run directory, "sgbm"
    result = model.predict("left.png", "right.png")
    result.score("disp_occ_0/000000_10.png")     # EPE, D1, bad-1/2/3
    result.show(); result.save("out/")
    stereo.predict_folder(model, "left/", "right/", "out/")
    stereo.evaluate(model, protocol="kitti2015-val", data_root="data/")
    stereo.report(model, ["kitti2015", "middlebury"], data_root="data/")
    net = stereo.psmnet(spp=MySPP, hourglass=MyHourglass)   # your modules dropped in
    run = stereo.train(net, "kitti2015", init="psmnet-kitti2015", epochs=2)

Importing it loads no training code (tests/test_layering.py): ``psmnet`` and ``train``
import it when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cnnlab.stereo.api import StereoModel, evaluate, load, predict_folder, report
    from cnnlab.stereo.results import (
        Disparity,
        Evaluation,
        FolderPrediction,
        PointCloud,
        Report,
        Scores,
    )
    from cnnlab.stereo.training.trainer import StereoRun, psmnet, train

# where each public name lives: imported on first use, so that ``import cnnlab.stereo.data.io``
# (and the command line's --help) does not load torch
_PUBLIC = {"StereoModel": "api", "evaluate": "api", "load": "api", "predict_folder": "api",
           "report": "api", "Disparity": "results", "Evaluation": "results",
           "FolderPrediction": "results", "PointCloud": "results", "Report": "results",
           "Scores": "results", "psmnet": "training.trainer", "train": "training.trainer",
           "StereoRun": "training.trainer"}

__all__ = [
    "Disparity",
    "Evaluation",
    "FolderPrediction",
    "PointCloud",
    "Report",
    "Scores",
    "StereoModel",
    "StereoRun",
    "evaluate",
    "load",
    "predict_folder",
    "psmnet",
    "report",
    "train",
]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        from importlib import import_module

        value = getattr(import_module(f"cnnlab.stereo.{_PUBLIC[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cnnlab.stereo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

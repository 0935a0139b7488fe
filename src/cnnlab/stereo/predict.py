"""Disparity, depth and a point cloud from any rectified stereo pair."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnlab.engine.atomic import check_writable_folder
from cnnlab.engine.card import ModelCard
from cnnlab.errors import DataError
from cnnlab.stereo.evaluate import disparity_of
from cnnlab.stereo.io import (
    Calibration,
    read_calibration,
    read_image,
    read_kitti_disparity,
    read_pfm_disparity,
    write_kitti_disparity,
    write_pfm,
)
from cnnlab.stereo.metrics import error_counts, rates
from cnnlab.stereo.visualize import (
    colorize_disparity,
    colorize_error,
    plot_overview,
    point_cloud,
    save_png,
    write_ply,
)


def is_grey(image: np.ndarray) -> bool:
    return bool(np.array_equal(image[..., 0], image[..., 1])
                and np.array_equal(image[..., 1], image[..., 2]))


def vertical_offset(left: np.ndarray, right: np.ndarray, search: int = 12) -> int:
    """Row shift that best aligns the two views' horizontal-edge profiles (0 if rectified)."""
    def profile(image):
        grey = image.astype(np.float64).mean(axis=2)
        edges = np.abs(np.diff(grey, axis=0)).mean(axis=1)
        return (edges - edges.mean()) / (edges.std() + 1e-9)

    a, b = profile(left), profile(right)
    search = min(search, (len(a) - 1) // 2)  # keep at least half the rows in every comparison
    best, best_score = 0, -np.inf
    for shift in range(-search, search + 1):
        x = a[max(shift, 0): len(a) + min(shift, 0)]
        y = b[max(-shift, 0): len(b) + min(-shift, 0)]
        score = float(np.mean(x * y))
        if score > best_score:
            best, best_score = shift, score
    return best


def check_pair(left_path: Path, right_path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read both views; errors for size mismatch; notes for grey or unrectified-looking pairs."""
    left, right = read_image(left_path), read_image(right_path)
    if left.shape != right.shape:
        raise DataError(f"{right_path}: size {right.shape[1]}x{right.shape[0]} differs from "
                        f"{left_path.name} ({left.shape[1]}x{left.shape[0]}); a rectified pair "
                        "has equal sizes")
    notes = []
    for path, image in ((left_path, left), (right_path, right)):
        if is_grey(image):
            notes.append(f"{path}: greyscale image, replicated to RGB (the model was trained "
                         "on colour; expect lower accuracy)")
    offset = vertical_offset(left, right)
    if abs(offset) >= 2:
        notes.append(f"{right_path}: rows look shifted by {offset} px against {left_path.name}; "
                     "the pair may not be rectified (disparity assumes horizontal epipolar lines)")
    return left, right, notes


def read_ground_truth(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if path.suffix.lower() == ".pfm":
        return read_pfm_disparity(path)
    return read_kitti_disparity(path)


# written only with --gt or a calibration: removed when this run does not write them
OPTIONAL_OUTPUTS = ("{stem}_error.png", "{stem}_depth.pfm", "{stem}.ply")


@dataclass
class PairInputs:
    """Everything ``stereo predict`` reads before inference, checked: the views, the notes about
    them, the calibration and the ground truth (disparity, valid mask)."""

    left_path: Path
    left: np.ndarray
    right: np.ndarray
    notes: list[str]
    calibration: Calibration | None = None
    truth: tuple[np.ndarray, np.ndarray] | None = None


def read_pair_inputs(left_path: Path, right_path: Path, calibration: Calibration | None = None,
                     calib_file: Path | None = None, ground_truth: Path | None = None
                     ) -> PairInputs:
    """Read and check a pair and its optional calibration and ground truth, so that a bad
    file is refused before a model is loaded and inference runs, not after."""
    left, right, notes = check_pair(Path(left_path), Path(right_path))
    if calib_file is not None:
        calibration = read_calibration(Path(calib_file))
    truth = None
    if ground_truth is not None:
        truth = read_ground_truth(Path(ground_truth))
        if truth[0].shape != left.shape[:2]:
            raise DataError(f"{ground_truth}: size {truth[0].shape[1]}x{truth[0].shape[0]} "
                            f"differs from the images ({left.shape[1]}x{left.shape[0]})")
    return PairInputs(Path(left_path), left, right, notes, calibration, truth)


def predict_pair(model: nn.Module, card: ModelCard, left_path: Path, right_path: Path,
                 out_dir: Path, calibration: Calibration | None = None,
                 calib_file: Path | None = None, ground_truth: Path | None = None,
                 log: Callable[[str], None] | None = None, precision: str = "fp32",
                 scale: float = 1.0) -> dict:
    """Write disparity (KITTI PNG, PFM, colour PNG), error map, depth and PLY into ``out_dir``."""
    check_writable_folder(out_dir, "--out")  # before the inputs are read
    inputs = read_pair_inputs(left_path, right_path, calibration, calib_file, ground_truth)
    return predict_inputs(model, card, inputs, out_dir, log, precision, scale)


def predict_inputs(model: nn.Module, card: ModelCard, inputs: PairInputs, out_dir: Path,
                   log: Callable[[str], None] | None = None, precision: str = "fp32",
                   scale: float = 1.0) -> dict:
    """``predict_pair`` on inputs already read and checked (see ``read_pair_inputs``), the
    network run in ``precision`` on the pair scaled by ``scale`` (see ``disparity_of``)."""
    left, right, truth, calibration = inputs.left, inputs.right, inputs.truth, inputs.calibration
    left_path, notes = inputs.left_path, inputs.notes
    check_writable_folder(out_dir, "--out")
    if log is not None:
        scaled = f", scaled by {scale:.3g}" if scale != 1 else ""
        log(f"Running {card.architecture} in {precision} on {left.shape[1]}x{left.shape[0]} "
            f"({left.shape[0] * left.shape[1] / 1e6:.2f} megapixels{scaled})...")
    disparity = disparity_of(model, card, left, right, precision, scale)
    out_dir = Path(out_dir)
    stem = Path(left_path).stem
    outputs = {
        "disparity_png": write_kitti_disparity(out_dir / f"{stem}_disp.png", disparity),
        "disparity_pfm": write_pfm(out_dir / f"{stem}_disp.pfm", disparity),
        "color_png": save_png(out_dir / f"{stem}_disp_color.png",
                              colorize_disparity(disparity, card.kwargs["max_disparity"] * 0.75,
                                                 np.ones_like(disparity, dtype=bool))),
    }
    result = {"notes": notes, "size": list(disparity.shape), "precision": precision,
              "scale": scale,
              "disparity_range": [float(disparity.min()), float(disparity.max())]}
    error_image = None
    if truth is not None:
        target, valid = truth
        result["metrics"] = rates(error_counts(torch.from_numpy(disparity),
                                               torch.from_numpy(target), torch.from_numpy(valid)))
        error_image = colorize_error(disparity, target, valid)
        outputs["error_png"] = save_png(out_dir / f"{stem}_error.png", error_image)
    outputs["overview_png"] = plot_overview(
        out_dir / f"{stem}_overview.png", left, disparity, card.kwargs["max_disparity"] * 0.75,
        error_image, f"{Path(left_path).name}: {card.name or card.architecture}")
    if calibration is not None:
        depth = calibration.depth(disparity)
        outputs["depth_pfm"] = write_pfm(out_dir / f"{stem}_depth.pfm", depth)
        xyz, rgb = point_cloud(depth, left, calibration.focal)
        outputs["ply"] = write_ply(out_dir / f"{stem}.ply", xyz, rgb)
        result["points"] = len(xyz)
        result["median_depth_m"] = float(np.median(depth[depth > 0])) if (depth > 0).any() \
            else None
    for name in OPTIONAL_OUTPUTS:  # this pair's files from an earlier run would mislead
        stale = out_dir / name.format(stem=stem)
        if stale.is_file() and stale not in outputs.values():
            stale.unlink()
    result["outputs"] = {k: str(v) for k, v in outputs.items()}
    return result

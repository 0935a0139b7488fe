"""Disparity metrics as KITTI defines them, with pixel counts so results aggregate exactly.

EPE: mean |pred - gt|. D1: error > 3 px AND > 5% of gt. bad-t: error > t px. Per image on
the given mask; over a dataset the error and pixel counts are summed (as KITTI's devkit does),
and per-image means are reported beside them.
"""

from __future__ import annotations

import numpy as np
import torch

THRESHOLDS = (1.0, 2.0, 3.0)
COUNT_KEYS = ("pixels", "abs_error", "d1", *(f"bad{t:g}" for t in THRESHOLDS))  # error_counts'


def error_counts(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
                 ) -> dict[str, torch.Tensor]:
    """Sums over ``mask``: abs error, D1 and bad-t counts, and the pixel count, as float64
    0-d tensors on the device (no host sync: training sums them per epoch; convert with
    ``float`` when a number is needed)."""
    mask = mask & torch.isfinite(target)
    error = torch.where(mask, (prediction - target).abs().double(), 0.0)
    gt = target.double()
    counts = {"pixels": mask.sum(dtype=torch.float64), "abs_error": error.sum(),
              "d1": (mask & (error > 3.0) & (error > 0.05 * gt)).sum(dtype=torch.float64)}
    for t in THRESHOLDS:
        counts[f"bad{t:g}"] = (mask & (error > t)).sum(dtype=torch.float64)
    return counts


def rates(counts: dict[str, float | torch.Tensor]) -> dict[str, float]:
    """Counts -> EPE (px) and percentages."""
    pixels = max(float(counts.get("pixels", 0.0)), 1.0)
    out = {"epe": float(counts["abs_error"]) / pixels, "d1": 100.0 * float(counts["d1"]) / pixels}
    for t in THRESHOLDS:
        out[f"bad{t:g}"] = 100.0 * float(counts[f"bad{t:g}"]) / pixels
    return out


def fill_holes_background(disparity: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """KITTI devkit's background interpolation: each hole takes the smaller of the nearest
    valid disparities to its left and right in the same row (0 where a row has none)."""
    disparity = np.asarray(disparity, dtype=np.float32)
    h, w = disparity.shape
    columns = np.broadcast_to(np.arange(w), (h, w))
    left_index = np.maximum.accumulate(np.where(valid, columns, -1), axis=1)
    right_index = np.minimum.accumulate(np.where(valid, columns, w)[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(h)[:, None]
    left = np.where(left_index >= 0, disparity[rows, np.clip(left_index, 0, w - 1)], np.inf)
    right = np.where(right_index < w, disparity[rows, np.clip(right_index, 0, w - 1)], np.inf)
    filled = np.minimum(left, right)
    filled = np.where(np.isfinite(filled), filled, 0.0)
    return np.where(valid, disparity, filled).astype(np.float32)


def region_counts(disparity: np.ndarray, produced: np.ndarray, target: np.ndarray,
                  masks: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, dict[str, float]]]:
    """A prediction scored on each region: holes (pixels not ``produced``) filled by KITTI's
    background interpolation first, so they count as errors where the fill is wrong. Returns
    the filled disparity and, per region, ``error_counts`` as floats."""
    filled = (disparity if produced.all()  # dense output: nothing to fill
              else fill_holes_background(disparity, produced))
    prediction = torch.from_numpy(np.ascontiguousarray(filled, dtype=np.float32))
    truth = torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32))
    counts = {region: {key: float(value) for key, value in
                       error_counts(prediction, truth, torch.from_numpy(mask)).items()}
              for region, mask in masks.items()}
    return filled, counts

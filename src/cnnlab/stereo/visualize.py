"""Colour maps (KITTI's disparity and error colourings), depth and PLY point clouds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from cnnlab.engine.atomic import atomic_write

# KITTI devkit's disparity colour map: (r, g, b, bin weight) control points
_KITTI_DISP_MAP = np.array([[0, 0, 0, 114], [0, 0, 1, 185], [1, 0, 0, 114], [1, 0, 1, 174],
                            [0, 1, 0, 114], [0, 1, 1, 185], [1, 1, 0, 114], [1, 1, 1, 0]],
                           dtype=np.float64)
# KITTI devkit's error colours: (lower, upper) of the normalised error and RGB
_KITTI_ERROR_MAP = [(0 / 3, 0.1875 / 3, (49, 54, 149)), (0.1875 / 3, 0.375 / 3, (69, 117, 180)),
                    (0.375 / 3, 0.75 / 3, (116, 173, 209)), (0.75 / 3, 1.5 / 3, (171, 217, 233)),
                    (1.5 / 3, 3 / 3, (224, 243, 248)), (3 / 3, 6 / 3, (254, 224, 144)),
                    (6 / 3, 12 / 3, (253, 174, 97)), (12 / 3, 24 / 3, (244, 109, 67)),
                    (24 / 3, 48 / 3, (215, 48, 39)), (48 / 3, np.inf, (165, 0, 38))]


def colorize_disparity(disparity: np.ndarray, max_disparity: float | None = None,
                       valid: np.ndarray | None = None) -> np.ndarray:
    """(H, W) -> (H, W, 3) uint8 in KITTI's colour map (black = invalid)."""
    disparity = np.asarray(disparity, dtype=np.float64)
    if valid is None:
        valid = np.isfinite(disparity) & (disparity > 0)
    if max_disparity is None:
        max_disparity = float(disparity[valid].max()) if valid.any() else 1.0
    value = np.clip(np.where(valid, disparity, 0) / max(max_disparity, 1e-9), 0, 1)
    weights = _KITTI_DISP_MAP[:-1, 3]
    cumulative = np.concatenate([[0], np.cumsum(weights / weights.sum())])
    index = np.clip(np.searchsorted(cumulative, value, side="right") - 1, 0, len(weights) - 1)
    fraction = (value - cumulative[index]) / (weights[index] / weights.sum())
    colour = (_KITTI_DISP_MAP[index, :3] * (1 - fraction[..., None])
              + _KITTI_DISP_MAP[index + 1, :3] * fraction[..., None])
    colour[~valid] = 0
    return (colour * 255 + 0.5).astype(np.uint8)


def colorize_error(prediction: np.ndarray, target: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """KITTI-style error image: error normalised by min(|e|/3, |e|/(0.05 gt)); blue = good."""
    error = np.abs(prediction - target)
    with np.errstate(divide="ignore", invalid="ignore"):
        normalised = np.minimum(error / 3.0, 20.0 * error / np.maximum(target, 1e-9))
    image = np.zeros((*error.shape, 3), dtype=np.uint8)
    for lower, upper, rgb in _KITTI_ERROR_MAP:
        image[valid & (normalised >= lower) & (normalised < upper)] = rgb
    return image


def save_png(path: Path, array: np.ndarray) -> Path:
    image = Image.fromarray(array)
    return atomic_write(Path(path), lambda tmp: image.save(tmp, format="PNG"))


def point_cloud(depth: np.ndarray, colours: np.ndarray, focal: float,
                principal: tuple[float, float] | None = None, max_depth: float = 80.0
                ) -> tuple[np.ndarray, np.ndarray]:
    """Back-project valid depth (metres) through a pinhole camera -> (N, 3) xyz and (N, 3) rgb."""
    h, w = depth.shape
    cx, cy = principal if principal is not None else ((w - 1) / 2.0, (h - 1) / 2.0)
    ys, xs = np.nonzero((depth > 0) & (depth < max_depth) & np.isfinite(depth))
    z = depth[ys, xs].astype(np.float32)
    xyz = np.stack([(xs - cx) * z / focal, (ys - cy) * z / focal, z], axis=1).astype(np.float32)
    return xyz, colours[ys, xs].astype(np.uint8)


def write_ply(path: Path, xyz: np.ndarray, rgb: np.ndarray) -> Path:
    """Binary little-endian PLY with float xyz and uchar rgb, written atomically."""
    header = ("ply\nformat binary_little_endian 1.0\n"
              f"element vertex {len(xyz)}\n"
              "property float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n")
    records = np.empty(len(xyz), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                        ("r", "u1"), ("g", "u1"), ("b", "u1")])
    records["x"], records["y"], records["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    records["r"], records["g"], records["b"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    return atomic_write(Path(path),
                        lambda tmp: tmp.write_bytes(header.encode() + records.tobytes()))

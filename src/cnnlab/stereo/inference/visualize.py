"""Colour maps (KITTI's disparity and error colourings), depth and PLY point clouds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from cnnlab.engine.atomic import atomic_write
from cnnlab.engine.plotting import PNG_COMPRESSION, figure_png

# KITTI devkit's disparity colour map: (r, g, b, bin weight) control points
_KITTI_DISP_MAP = np.array([[0, 0, 0, 114], [0, 0, 1, 185], [1, 0, 0, 114], [1, 0, 1, 174],
                            [0, 1, 0, 114], [0, 1, 1, 185], [1, 1, 0, 114], [1, 1, 1, 0]],
                           dtype=np.float64)
# KITTI devkit's error colours: (lower, upper) of the normalised error and RGB
KITTI_ERROR_MAP = [(0 / 3, 0.1875 / 3, (49, 54, 149)), (0.1875 / 3, 0.375 / 3, (69, 117, 180)),
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
    for lower, upper, rgb in KITTI_ERROR_MAP:
        image[valid & (normalised >= lower) & (normalised < upper)] = rgb
    return image


def save_png(path: Path, array: np.ndarray) -> Path:
    image = Image.fromarray(array)
    return atomic_write(Path(path), lambda tmp: image.save(tmp, format="PNG",
                                                           compress_level=PNG_COMPRESSION))


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


def _bar_beside(ax):
    """An axis for a colour bar as tall as the image in ``ax``, just right of it."""
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    return make_axes_locatable(ax).append_axes("right", size="2%", pad=0.08)


def overview_figure(left: np.ndarray | None, disparity: np.ndarray, scale_max: float,
                    error_image: np.ndarray | None = None, title: str = "",
                    confidence: np.ndarray | None = None, width: float = 9.0):
    """A figure to read, beside the raw files: the left view (where given), the disparity in
    KITTI's colours with a colour bar in pixels, the confidence with its scale where given,
    and (with ground truth) the error map with its legend. A Figure of its own, outside
    pyplot (see ``engine.plotting.new_figure``)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import ListedColormap, Normalize
    from matplotlib.patches import Patch

    from cnnlab.engine.plotting import new_figure

    panels = ["left"] * (left is not None) + ["disparity"] + ["confidence"] * (
        confidence is not None) + ["error"] * (error_image is not None)
    height, image_width = disparity.shape
    rows = len(panels)
    fig = new_figure(figsize=(width, rows * width * height / image_width + 0.9 * rows))
    axes = np.atleast_1d(fig.subplots(rows, 1))
    for ax, panel in zip(axes, panels):
        if panel == "left":
            ax.imshow(left)
            ax.set_title("left view", fontsize=9)
        elif panel == "disparity":
            ramp = colorize_disparity(np.linspace(1e-6, scale_max, 256)[None], scale_max)[0] / 255
            ax.imshow(colorize_disparity(disparity, scale_max, np.ones_like(disparity, bool)))
            ax.set_title(f"disparity: {disparity.min():.1f} to {disparity.max():.1f} px",
                         fontsize=9)
            mappable = ScalarMappable(Normalize(0, scale_max), ListedColormap(ramp))
            fig.colorbar(mappable, cax=_bar_beside(ax), label="disparity (px)")
        elif panel == "confidence":
            shown = ax.imshow(confidence, cmap="gray", vmin=0, vmax=1)
            ax.set_title("confidence: the network's probability mass near its estimate",
                         fontsize=9)
            fig.colorbar(shown, cax=_bar_beside(ax), label="confidence")
        else:
            ax.imshow(error_image)
            ax.set_title("error / KITTI's tolerance (the larger of 3 px and 5% of the true "
                         "disparity); black: no ground truth", fontsize=9)
            handles = [Patch(color=np.array(rgb) / 255.0,
                             label=(f"{lower:.3g} to {upper:.3g}" if np.isfinite(upper)
                                    else f"{lower:.3g} or more"))
                       for lower, upper, rgb in KITTI_ERROR_MAP]
            ax.legend(handles=handles, title="1 or more: a D1 error", fontsize=6,
                      title_fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5),
                      frameon=False)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_overview(path: Path, left: np.ndarray, disparity: np.ndarray, scale_max: float,
                  error_image: np.ndarray | None = None, title: str = "",
                  confidence: np.ndarray | None = None) -> Path:
    """``overview_figure`` written as a PNG at ``path`` (atomically)."""
    data = figure_png(overview_figure(left, disparity, scale_max, error_image, title,
                                      confidence), dpi=110)
    return atomic_write(Path(path), lambda tmp: tmp.write_bytes(data))

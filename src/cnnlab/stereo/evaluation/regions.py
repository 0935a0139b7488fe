"""Pixel regions of one stereo pair, to say *where* a method fails: occluded or not, flat or
textured, near the image border or not, and by ground-truth disparity (far to near).

Every mask is a subset of the pixels with ground truth. Occlusion comes from the dataset where
it has a non-occluded mask (KITTI, synthetic); otherwise it is derived from the ground truth by
a z-buffer forward warp, which is exact for dense GT and misses occluders that sparse GT lacks.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # no torch: the command line lists the protocols (which use this) for --help
    from cnnlab.stereo.data.datasets import StereoSample

# (name, lowest, highest) ground-truth disparity in px: KITTI reaches ~230 px, Middlebury at
# quarter size ~60 px, so the first three bins cover both and the last holds KITTI's near cars
DEPTH_BINS: tuple[tuple[str, float, float], ...] = (
    ("far (d < 16 px)", 0.0, 16.0),
    ("mid (16-48 px)", 16.0, 48.0),
    ("near (48-96 px)", 48.0, 96.0),
    ("very near (>= 96 px)", 96.0, math.inf),
)
# pairs of complementary regions, (harder, easier), that the report contrasts per method
CONTRASTS = (("occluded", "non-occluded"), ("low-texture", "textured"), ("border", "interior"))
BEYOND_RANGE = "beyond range"
OCCLUSION_SOURCES = ("dataset", "derived from GT")
TEXTURE_WINDOW = 7  # px, the box the gradient magnitude is averaged over
OCCLUSION_TOLERANCE = 1.0  # px: a nearer surface must be this much nearer to hide a pixel


def occlusion_from_disparity(disparity: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(H, W) left-view GT -> (H, W) bool, True where the pixel is hidden in the right view.

    Each valid pixel x with disparity d lands on right column round(x - d); it is occluded when
    a valid pixel landing on the same column is more than 1 px nearer (larger disparity), or
    when x - d < 0 (outside the right view). Invalid pixels are never marked.
    """
    disparity = np.asarray(disparity, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool) & np.isfinite(disparity)
    height, width = disparity.shape
    match = np.arange(width)[None, :] - np.where(valid, disparity, 0.0)
    column = np.floor(match + 0.5).astype(np.int64)  # half-up rounding, the same for every row
    inside = valid & (match >= 0) & (column <= width - 1)
    flat = (np.arange(height)[:, None] * width + np.clip(column, 0, width - 1))[inside]
    nearest = np.full(height * width, -np.inf)
    np.maximum.at(nearest, flat, disparity[inside])  # z-buffer: the largest disparity wins
    occluded = valid & ~inside
    occluded[inside] = nearest[flat] > disparity[inside] + OCCLUSION_TOLERANCE
    return occluded


def _box_mean(image: np.ndarray, size: int) -> np.ndarray:
    """Mean over a size x size box centred on each pixel (edges replicated), by summed areas."""
    half = size // 2
    padded = np.pad(image.astype(np.float64), half, mode="edge")
    summed = np.zeros((padded.shape[0] + 1, padded.shape[1] + 1))
    summed[1:, 1:] = padded.cumsum(0).cumsum(1)
    box = (summed[size:, size:] - summed[:-size, size:] - summed[size:, :-size]
           + summed[:-size, :-size])
    return box / (size * size)


def texture(left: np.ndarray) -> np.ndarray:
    """(H, W, 3) or (H, W) image -> (H, W) float32 local gradient magnitude in grey levels per
    pixel: the Sobel gradient of the grey image (divided by 8, its gain), averaged over 7x7."""
    image = np.asarray(left, dtype=np.float64)
    grey = image[..., :3] @ np.array([0.299, 0.587, 0.114]) if image.ndim == 3 else image
    p = np.pad(grey, 1, mode="edge")
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    return _box_mean(np.hypot(gx, gy) / 8.0, TEXTURE_WINDOW).astype(np.float32)


def _range_text(low: float, high: float) -> str:
    if low <= 0:
        return f"below {high:g} px"
    return f"{low:g} px or more" if math.isinf(high) else f"from {low:g} to below {high:g} px"


def describe_regions(max_disparity: int, low_texture: float = 4.0, border: int = 32,
                     depth_bins: tuple[tuple[str, float, float], ...] = DEPTH_BINS
                     ) -> dict[str, str]:
    """What each region of ``region_masks`` holds, thresholds included (same keys, same order)."""
    described = {
        "all": "every pixel with ground truth",
        "non-occluded": "pixels visible in both views (a match exists)",
        "occluded": "pixels hidden in the right view by a nearer surface, or outside it: no "
                    "match exists, so a method must guess from context",
        "low-texture": f"local gradient below {low_texture:g} grey levels/px (Sobel, averaged "
                       f"over {TEXTURE_WINDOW}x{TEXTURE_WINDOW} px): flat walls, sky, road",
        "textured": f"local gradient of {low_texture:g} grey levels/px or more",
        "border": f"within {border} px of an image edge",
        "interior": f"more than {border} px from every image edge",
    }
    for name, low, high in depth_bins:
        described[name] = f"ground-truth disparity {_range_text(low, high)}"
    described[BEYOND_RANGE] = (f"ground-truth disparity of {max_disparity} px or more: outside "
                               "the searched range, so PSMNet cannot output it")
    return described


def non_occluded(sample: StereoSample) -> tuple[np.ndarray, str]:
    """The pixels with ground truth that the right view sees, and where that comes from:
    the dataset's own mask ("dataset"), else ``occlusion_from_disparity`` ("derived from
    GT")."""
    valid = np.asarray(sample.valid, dtype=bool)
    if sample.noc is not None:
        return valid & sample.noc, OCCLUSION_SOURCES[0]
    return valid & ~occlusion_from_disparity(sample.disparity, valid), OCCLUSION_SOURCES[1]


def region_masks(sample: StereoSample, max_disparity: int, low_texture: float = 4.0,
                 border: int = 32,
                 depth_bins: tuple[tuple[str, float, float], ...] = DEPTH_BINS
                 ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(H, W) bool masks of ``sample``'s regions (see ``describe_regions``), each within
    ``sample.valid``, and notes: ``notes["occlusion"]`` is "dataset" when the occlusion masks
    are the dataset's own, "derived from GT" when computed by ``occlusion_from_disparity``."""
    valid = np.asarray(sample.valid, dtype=bool)
    gt = np.where(valid, sample.disparity, 0.0)
    visible, source = non_occluded(sample)
    gradient = texture(sample.left)
    height, width = valid.shape
    rows, columns = np.arange(height)[:, None], np.arange(width)[None, :]
    near_edge = ((rows < border) | (rows >= height - border)
                 | (columns < border) | (columns >= width - border))
    masks = {"all": valid, "non-occluded": visible, "occluded": valid & ~visible,
             "low-texture": valid & (gradient < low_texture),
             "textured": valid & (gradient >= low_texture),
             "border": valid & near_edge, "interior": valid & ~near_edge}
    for name, low, high in depth_bins:
        masks[name] = valid & (gt >= low) & (gt < high)
    masks[BEYOND_RANGE] = valid & (gt >= max_disparity)
    return masks, {"occlusion": source}

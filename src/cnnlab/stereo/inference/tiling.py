"""PSMNet on overlapping tiles, for pairs whose cost volume would not fit in memory.

A tile is what the network sees: a crop of both views. Its kept region is the crop less a
context margin on every side and, on the left, the disparity range too: a left pixel at x is
matched against right pixels down to x - D, which must be in the same crop. Kept regions
partition the image; each output pixel comes from exactly one tile. Full-width strips need no
range margin but cut the context the network reads across rows: full-height tiles lose less
(see ``stereo.budget.tile_for_budget``, which picks the tile).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cnnlab.errors import ConfigError

TILE_MARGIN = 64  # px of context around each kept region (32 lost accuracy: see budget.py)
MIN_KEPT = 32  # px: a smaller kept region would be mostly margin


@dataclass(frozen=True)
class Tile:
    keep: tuple[int, int, int, int]  # y0, y1, x0, x1: the output pixels this tile gives
    crop: tuple[int, int, int, int]  # y0, y1, x0, x1: what the network sees


def _spans(size: int, crop: int, before: int, after: int) -> list[tuple[int, int]]:
    """Equal kept spans covering ``size`` such that each, widened by ``before`` and ``after``,
    fits in ``crop`` (one span when the whole size fits)."""
    if crop >= size:
        return [(0, size)]
    kept = crop - before - after
    count = -(-size // kept)
    edges = np.linspace(0, size, count + 1).round().astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def plan_tiles(height: int, width: int, tile: tuple[int, int], max_disparity: int,
               margin: int = TILE_MARGIN) -> list[Tile]:
    """Tiles of at most ``tile`` (H, W) pixels whose kept regions partition the image."""
    tile_h, tile_w = tile
    if tile_h < height and tile_h - 2 * margin < MIN_KEPT:
        raise ConfigError(f"{tile_h}x{tile_w}: a height below {2 * margin + MIN_KEPT} px leaves "
                          f"less than {MIN_KEPT} px inside the {margin} px margins",
                          parameter="tile")
    if tile_w < width and tile_w - max_disparity - 2 * margin < MIN_KEPT:
        raise ConfigError(f"{tile_h}x{tile_w}: a tile narrower than the image must be wider "
                          f"than the disparity range ({max_disparity} px) plus two {margin} px "
                          f"margins plus {MIN_KEPT} px", parameter="tile")
    tiles = []
    for y0, y1 in _spans(height, tile_h, margin, margin):
        for x0, x1 in _spans(width, tile_w, max_disparity + margin, margin):
            crop = (max(0, y0 - margin), min(height, y1 + margin),
                    max(0, x0 - max_disparity - margin), min(width, x1 + margin))
            tiles.append(Tile((y0, y1, x0, x1), crop))
    return tiles


def tiled_forward(model: nn.Module, left: torch.Tensor, right: torch.Tensor,
                  tile: tuple[int, int], margin: int = TILE_MARGIN) -> dict[str, torch.Tensor]:
    """The model's (B, H, W) "disparity" (and "confidence") of normalised (B, 3, H, W) views,
    tile by tile: only one tile's volume is held at a time."""
    batch, _, height, width = left.shape
    outputs: dict[str, torch.Tensor] = {}
    for part in plan_tiles(height, width, tile, model.max_disparity, margin):
        cy0, cy1, cx0, cx1 = part.crop
        y0, y1, x0, x1 = part.keep
        result = model(left[..., cy0:cy1, cx0:cx1], right[..., cy0:cy1, cx0:cx1])
        for key in ("disparity", "confidence"):
            if key in result:
                whole = outputs.setdefault(key, left.new_zeros(batch, height, width,
                                                               dtype=torch.float32))
                whole[:, y0:y1, x0:x1] = result[key][:, y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0]
    return outputs

"""How much memory a PSMNet inference takes, how much there is, and the tile that fits.

The peak is linear in the quarter-resolution cost volume's voxels, (H/4)(W/4)(D/4) of the
padded input, each holding 32 channels through the 3-D stage. Fitted on this project's CPU
(torch 2.14.1, 2 threads, cnnlab's allocator setting; peak RSS growth over the loaded model,
bench/stereo_memory.py): 256x512 and 384x1248 at D = 192 give the slopes and intercepts below;
512x1024 at D = 96, 128x256 and 544x960 at D = 192 fell within 8% of the line. bf16 and fp16
hold the volumes in 2 bytes (the soft-argmin stays in fp32). On a GPU the caching allocator
differs: the figure is a CPU estimate.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from cnnlab.errors import ConfigError
from cnnlab.stereo.inference.tiling import MIN_KEPT, TILE_MARGIN

# MB per low-resolution voxel and MB of fixed cost, by the precision of the 3-D stage
PEAK_MODEL = {"fp32": (838e-6, 23.0), "bf16": (500e-6, 6.5), "fp16": (500e-6, 6.5)}
BUDGET_SHARE = 0.8  # of the memory available when no budget is given
MIN_STRIP = 2 * TILE_MARGIN + MIN_KEPT  # rows: a strip's least height
# MB per pixel of the full-size pair that tiling does not divide: the normalised views (24 B),
# the stitched disparity and confidence and their copies (~16 B)
IMAGE_MB_PER_PIXEL = 40e-6


def volume_voxels(height: int, width: int, max_disparity: int) -> int:
    """Voxels of the (D/4, H/4, W/4) cost volume of an input padded to multiples of 16."""
    padded_h, padded_w = (math.ceil(x / 16) * 16 for x in (height, width))
    return (padded_h // 4) * (padded_w // 4) * (max_disparity // 4)


def estimate_peak_mb(height: int, width: int, max_disparity: int, precision: str = "fp32"
                     ) -> float:
    """Estimated peak memory (MB) PSMNet inference adds on a ``height`` x ``width`` pair."""
    per_voxel, fixed = PEAK_MODEL.get(precision, PEAK_MODEL["fp32"])
    return fixed + per_voxel * volume_voxels(height, width, max_disparity)


def _read_number(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_mb() -> float | None:
    """Memory this process can still take: the kernel's MemAvailable, lowered to the cgroup
    limit's headroom where a container sets one (None where neither is readable)."""
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    limit = _read_number(Path("/sys/fs/cgroup/memory.max"))
    used = _read_number(Path("/sys/fs/cgroup/memory.current"))
    if limit is not None and used is not None:
        headroom = (limit - used) / 2**20
        available = headroom if available is None else min(available, headroom)
    if available is None and hasattr(os, "sysconf"):
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (ValueError, OSError):
            available = None
    return available


def default_budget_mb(device=None) -> float | None:
    """80% of the memory available: the host's, or on CUDA the device's free memory (the
    estimate was fitted on the CPU; CUDA's caching allocator holds similar tensors)."""
    if device is not None and getattr(device, "type", device) == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return BUDGET_SHARE * free / 2**20
    available = available_mb()
    return None if available is None else BUDGET_SHARE * available


def tile_for_budget(height: int, width: int, max_disparity: int, precision: str,
                    budget_mb: float) -> tuple[int, int] | None:
    """None when the whole pair fits in ``budget_mb``; else the tile (H, W) to run it on.

    Full-height tiles first: splitting the columns costs compute (each tile also reads the
    range and the margins) but almost no accuracy, while splitting the rows loses context
    the network uses (official KITTI 2015 weights on the shared pairs, bf16: EPE 0.3494 whole;
    384x768 column tiles 0.3515; 320-row strips 0.357, 160-row strips 0.423;
    bench/stereo_memory.py). So the tallest tile whose widest fitting width reads at most as
    many columns again as it keeps wins; the full-size inputs and outputs are set aside first.
    """
    def fits(h: int, w: int) -> bool:
        return estimate_peak_mb(h, w, max_disparity, precision) <= for_tiles

    if estimate_peak_mb(height, width, max_disparity, precision) <= budget_mb:
        return None
    for_tiles = budget_mb - IMAGE_MB_PER_PIXEL * height * width
    reach = max_disparity + 2 * TILE_MARGIN  # columns a tile reads beyond what it keeps
    fallback = None
    for tile_h in [height] + list(range((height - 1) // 16 * 16, MIN_STRIP - 1, -16)):
        widths = [width] + list(range((width - 1) // 16 * 16, reach + MIN_KEPT - 1, -16))
        tile_w = next((w for w in widths if fits(tile_h, w)), None)
        if tile_w is None:
            continue
        if tile_w == width or tile_w - reach >= reach:
            return tile_h, tile_w
        fallback = fallback or (tile_h, tile_w)
    if fallback is not None:
        return fallback
    narrowest = reach + MIN_KEPT
    need = estimate_peak_mb(MIN_STRIP, narrowest, max_disparity, precision)
    raise ConfigError(f"{budget_mb:.0f} MB: even a {MIN_STRIP}x{narrowest} tile needs about "
                      f"{need:.0f} MB at a range of {max_disparity} px (and the {width}x{height} "
                      f"images {IMAGE_MB_PER_PIXEL * height * width:.0f} MB); lower the range "
                      "with `max_disparity` or the size with `scale`", parameter="max_memory")


def tiles_for(sizes: list[tuple[int, int]], max_disparity: int, precision: str, device=None,
              scale: float = 1.0, tile: str | tuple[int, int] = "auto",
              max_memory: float | None = None, can_tile: bool = True
              ) -> list[tuple[int, int] | None]:
    """Each (height, width) pair's tile (None: whole), decided from the memory estimate before
    any pair runs: ``tile`` "auto" tiles a pair whose estimate exceeds ``max_memory`` MB
    (default: ``default_budget_mb(device)``), "off" refuses it, (H, W) always tiles so. Sizes
    are the full pair's; the network sees them scaled by ``scale``, searching
    ``max_disparity`` full-resolution pixels. ``can_tile`` False (an exported graph) refuses a
    pair over the budget."""
    from cnnlab.stereo.inference.methods import scaled_max_disparity
    from cnnlab.stereo.inference.tiling import plan_tiles

    budget = max_memory or default_budget_mb(device)
    scaled_range = scaled_max_disparity(max_disparity, scale)
    tiles = []
    for height, width in sizes:
        small = (max(1, round(height * scale)), max(1, round(width * scale)))
        chosen = None
        if isinstance(tile, tuple):
            chosen = tile
            plan_tiles(*small, chosen, scaled_range)  # refused now, not after loading
        elif budget is not None:
            need = estimate_peak_mb(*small, scaled_range, precision)
            if need > budget:
                if tile == "off" or not can_tile:
                    raise ConfigError(
                        f"{width}x{height}: PSMNet needs about {need:.0f} MB here and "
                        f"{budget:.0f} MB are available (`max_memory`); use `tile` auto with "
                        f"`runtime` torch, or `scale` {max(0.1, (budget / need) ** 0.5):.2f}")
                chosen = tile_for_budget(*small, scaled_range, precision, budget)
        tiles.append(chosen)
    return tiles

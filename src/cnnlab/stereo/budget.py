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
from cnnlab.stereo.tiling import MIN_KEPT, TILE_MARGIN

# MB per low-resolution voxel and MB of fixed cost, by the precision of the 3-D stage
PEAK_MODEL = {"fp32": (838e-6, 23.0), "bf16": (500e-6, 6.5), "fp16": (500e-6, 6.5)}
BUDGET_SHARE = 0.8  # of the memory available when no budget is given
MIN_STRIP = 2 * TILE_MARGIN + MIN_KEPT  # rows: a strip's least height


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


def default_budget_mb() -> float | None:
    available = available_mb()
    return None if available is None else BUDGET_SHARE * available


def tile_for_budget(height: int, width: int, max_disparity: int, precision: str,
                    budget_mb: float) -> tuple[int, int] | None:
    """None when the whole pair fits in ``budget_mb``; else the largest tile (H, W) that does:
    full-width strips first (no range margin to pay), then narrower tiles."""
    def fits(h: int, w: int) -> bool:
        return estimate_peak_mb(h, w, max_disparity, precision) <= budget_mb

    if fits(height, width):
        return None
    for tile_h in range(math.ceil(height / 16) * 16, MIN_STRIP - 1, -16):
        if fits(tile_h, width):
            return tile_h, width
    narrowest = max_disparity + 2 * TILE_MARGIN + MIN_KEPT
    for tile_w in range(math.ceil(width / 16) * 16, narrowest - 1, -16):
        if fits(MIN_STRIP, tile_w):
            return MIN_STRIP, tile_w
    need = estimate_peak_mb(MIN_STRIP, narrowest, max_disparity, precision)
    raise ConfigError(f"--max-memory {budget_mb:.0f} MB: even a {MIN_STRIP}x{narrowest} "
                      f"tile needs about {need:.0f} MB at a range of {max_disparity} px; "
                      "lower the range with --max-disparity or the size with --scale")

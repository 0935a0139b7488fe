"""Test helpers that write or check files in official formats (not library code)."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def write_cifar_batch(path: Path, images: np.ndarray, labels: list[int]) -> None:
    """Write a batch in the official CIFAR-10 python format (used by tests and tools)."""
    payload = {b"batch_label": b"batch", b"labels": list(labels),
               b"data": images.reshape(len(images), -1).astype(np.uint8),
               b"filenames": [f"{i}.png".encode() for i in range(len(images))]}
    buffer = io.BytesIO()
    pickle.dump(payload, buffer, protocol=2)
    path.write_bytes(buffer.getvalue())


def warp_right_to_left(right: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
    """(3, H, W), (H, W) -> the right image sampled at x - d (bilinear): the left view's colours
    wherever the GT is right and the pixel is not occluded."""
    _, h, w = right.shape
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                          torch.arange(w, dtype=torch.float32), indexing="ij")
    gx = (x - disparity + 0.5) / w * 2 - 1
    gy = (y + 0.5) / h * 2 - 1
    grid = torch.stack([gx, gy], -1).unsqueeze(0)
    return F.grid_sample(right.unsqueeze(0), grid, mode="bilinear", padding_mode="border",
                         align_corners=False)[0]


def textured_pair(height: int = 48, width: int = 96, shift: int = 4, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """A random-texture uint8 pair whose right view is the left shifted by ``shift`` px."""
    rng = np.random.default_rng(seed)
    left = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    return left, np.roll(left, -shift, axis=1)


REPO = Path(__file__).resolve().parents[1]


def fresh_python(code: str) -> str:
    """``code``'s output when run in a fresh interpreter on this checkout's sources (what it
    imports is then what a command or a student's cell imports, nothing already loaded)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={"PYTHONPATH": str(REPO / "src")},
                          timeout=120).stdout.strip()

"""Shared fixtures: the real data root and tiny datasets written in the official layouts."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SHARED_DATA = SHARED / "data"
SHARED_WEIGHTS = SHARED / "weights"


def _missing(reason: str) -> None:
    """Skip the test, or fail it under CI (``CI=true``): CI must not skip real-data tests
    silently."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true, so this fails instead of skipping", pytrace=False)
    pytest.skip(reason)


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data; when it is absent the test skips with a clear reason (fails
    under CI=true)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        _missing(f"real data not found at {path} (the ../shared/data folder beside the repo)")
    return path


def shared_weights(*parts: str) -> Path:
    """A path under ../shared/weights; when it is absent the test skips with a clear reason
    (fails under CI=true)."""
    path = SHARED_WEIGHTS.joinpath(*parts)
    if not path.exists():
        _missing(f"real weights not found at {path} (the ../shared/weights folder beside the "
                 "repo)")
    return path


@pytest.fixture
def isolated_roots(tmp_path, monkeypatch) -> Path:
    """No $CNNLAB_DATA / $CNNLAB_WEIGHTS and an empty user cache, so only explicit roots count."""
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    monkeypatch.delenv("CNNLAB_WEIGHTS", raising=False)
    cache = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


def write_idx(path: Path, array: np.ndarray, compress: bool = True, mtime: int = 0) -> Path:
    """Write a uint8 IDX file (gzip with the given header mtime, or plain)."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with open(path, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb",
                                                    mtime=mtime) as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)
    return path


def make_tiny_mnist(root: Path, n_train: int = 256, n_test: int = 64, seed: int = 0,
                    folder: str = "MNIST/raw") -> Path:
    """A learnable 10-class MNIST-shaped dataset: class k lights up a bar at row 2k."""
    rng = np.random.default_rng(seed)
    raw = root / folder

    def make(n):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, 4 + 2 * label: 6 + 2 * label, 6:22] = 255
        return images, labels

    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images, labels = make(n)
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return root


@pytest.fixture
def tiny_mnist_root(tmp_path) -> Path:
    return make_tiny_mnist(tmp_path / "data")


@pytest.fixture
def pair_folders(tmp_path) -> Path:
    """left/ and right/ with three KITTI-named textured pairs, ground truth as PFM in disp/."""
    from helpers import textured_pair
    from PIL import Image

    from cnnlab.stereo.data.io import write_pfm

    for folder in ("left", "right", "disp"):
        (tmp_path / folder).mkdir()
    for i in range(3):
        left, right = textured_pair(64, 128, shift=4 + i, seed=i)
        name = f"{i:06d}_10.png"
        Image.fromarray(left).save(tmp_path / "left" / name)
        Image.fromarray(right).save(tmp_path / "right" / name)
        write_pfm(tmp_path / "disp" / f"{i:06d}_10.pfm", np.full((64, 128), 4.0 + i, np.float32))
    return tmp_path


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A small PSMNet (seeded random weights) with its card, as a .safetensors checkpoint."""
    import torch

    from cnnlab.engine.checkpoint import save_checkpoint
    from cnnlab.stereo.models.psmnet import PSMNet, PSMNetConfig
    from cnnlab.stereo.weights.card import psmnet_card

    config = PSMNetConfig(max_disparity=32, blocks=(1, 1, 1, 1))
    path = tmp_path_factory.mktemp("tiny") / "tiny.safetensors"
    torch.manual_seed(0)
    save_checkpoint(path, PSMNet(config).state_dict(), {"card": psmnet_card(config).to_dict()})
    return path

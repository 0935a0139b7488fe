"""MNIST, Fashion-MNIST and CIFAR-10 in torchvision's on-disk layouts, decoded to uint8 tensors.

Files are accepted by content (IDX magic, shapes, counts), not by the md5 of the archive, so
Debian's re-headered Fashion-MNIST gz files load; md5s are checked only on download.
"""

from __future__ import annotations

import gzip
import os
import pickle
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from cnnlab.data.download import download_file
from cnnlab.data.root import DEBIAN_ROOT, candidate_roots, download_root
from cnnlab.errors import DataError, shown_path


@dataclass(frozen=True)
class IdxFile:
    name: str  # file name of the gz archive
    md5: str
    count: int  # in the official release (subsets with fewer are accepted)
    image: bool


@dataclass(frozen=True)
class VisionSpec:
    """What a dataset is made of and where it lives relative to a data root."""

    name: str
    folder: str  # relative to the data root
    classes: tuple[str, ...]
    channels: int
    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    hflip: bool  # whether horizontal flips are label-preserving augmentation
    mirrors: tuple[str, ...] = ()
    files: dict[str, tuple[IdxFile, IdxFile]] = field(default_factory=dict)
    debian_folder: str | None = None


def _idx_files(md5s: tuple[str, str, str, str]) -> dict[str, tuple[IdxFile, IdxFile]]:
    """The four official files (train images/labels, test images/labels) and their md5s."""
    return {split: (IdxFile(f"{prefix}-images-idx3-ubyte.gz", md5s[2 * k], count, True),
                    IdxFile(f"{prefix}-labels-idx1-ubyte.gz", md5s[2 * k + 1], count, False))
            for k, (split, prefix, count) in enumerate((("train", "train", 60000),
                                                        ("test", "t10k", 10000)))}


_MNIST_FILES = _idx_files(("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                           "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"))
_FASHION_FILES = _idx_files(("8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                             "25c81989df183df01b3e8a0aad5dffbe",
                             "bef4ecab320f06d8554ea6380940ec79",
                             "bb300cfdad3c16e7a12a480ee83cd310"))

DATASETS: dict[str, VisionSpec] = {
    "mnist": VisionSpec(
        name="mnist",
        folder="MNIST/raw",
        classes=tuple(str(d) for d in range(10)),
        channels=1,
        size=28,
        mean=(0.1307,),
        std=(0.3081,),
        hflip=False,
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        files=_MNIST_FILES,
    ),
    "fashion-mnist": VisionSpec(
        name="fashion-mnist",
        folder="FashionMNIST/raw",
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        channels=1,
        size=28,
        mean=(0.2860,),
        std=(0.3530,),
        hflip=True,
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        files=_FASHION_FILES,
        debian_folder="fashion-mnist",
    ),
    "cifar10": VisionSpec(
        name="cifar10",
        folder="cifar-10-batches-py",
        classes=("airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck"),
        channels=3,
        size=32,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        hflip=True,
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
    ),
}

CIFAR_ARCHIVE = ("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")
CIFAR_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def get_spec(name: str) -> VisionSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}") from None


def _open_maybe_gz(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path}: cannot read ({exc}); the file is damaged: delete it and "
                        "download it again") from None


def read_idx(path: Path, expect: IdxFile | None = None) -> np.ndarray:
    """Decode an IDX file (gz or plain) of unsigned bytes; checks magic, dims and size."""
    data = _open_maybe_gz(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path}: not an IDX file of unsigned bytes (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected_len = header + int(np.prod(dims))
    if len(data) != expected_len:
        raise DataError(f"{path}: size {len(data)} bytes, header promises {expected_len}")
    if expect is not None and ndim != (3 if expect.image else 1):
        raise DataError(f"{path}: shape {dims}, expected "
                        f"{'(N, 28, 28) images' if expect.image else '(N,) labels'}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _idx_candidates(spec: VisionSpec, data_root) -> list[Path]:
    folders = [root / spec.folder for root in candidate_roots(data_root)]
    if data_root is None and spec.debian_folder:
        folders.append(DEBIAN_ROOT / spec.debian_folder)
    return folders


def _find_file(folders: list[Path], name: str) -> Path | None:
    for folder in folders:
        for candidate in (folder / name, folder / name.removesuffix(".gz")):
            if candidate.is_file():
                return candidate
    return None


def _missing_message(spec: VisionSpec, names: list[str], folders: list[Path]) -> str:
    where = " or ".join(shown_path(f) for f in folders)
    hint = (f"download the official files ({', '.join(names)}) into {folders[0]}, pass "
            f"`data_root` (the folder that holds {spec.folder}), set $CNNLAB_DATA, "
            f"or `download` when online")
    return f"{spec.name}: missing {', '.join(names)} in {where}; {hint}"


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches without executing arbitrary code: numpy arrays and builtins only."""

    _ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch -> (N, 3, 32, 32) uint8 images and (N,) labels."""
    try:
        with open(path, "rb") as handle:
            batch = _NumpyOnlyUnpickler(handle, encoding="bytes").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise DataError(f"{path}: not a CIFAR-10 python batch ({exc})") from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(f"{path}: not a CIFAR-10 python batch (no data/labels entries)")
    images = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != 3072:
        raise DataError(f"{path}: data has shape {images.shape} {images.dtype}, "
                        "expected (N, 3072) uint8")
    if len(labels) != len(images) or (labels.size and (labels.min() < 0 or labels.max() > 9)):
        raise DataError(f"{path}: labels do not match the images or are outside 0-9")
    return images.reshape(-1, 3, 32, 32), labels


def _download(spec: VisionSpec, data_root) -> None:
    root = download_root(data_root)
    if spec.name == "cifar10":
        archive = download_file([m + CIFAR_ARCHIVE[0] for m in spec.mirrors],
                                root / CIFAR_ARCHIVE[0], CIFAR_ARCHIVE[1])
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(root, filter="data")
        return
    for files in spec.files.values():
        for item in files:
            download_file([m + item.name for m in spec.mirrors],
                          root / spec.folder / item.name, item.md5)


def load_split(name: str, split: str, data_root: str | os.PathLike | None = None,
               download: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, H, W) uint8 images and (N,) int64 labels of the 'train' or 'test' split."""
    spec = get_spec(name)
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}; use 'train' or 'test'")
    if name == "cifar10":
        return _load_cifar(spec, split, data_root, download)
    folders = _idx_candidates(spec, data_root)
    image_file, label_file = spec.files[split]
    paths = [_find_file(folders, f.name) for f in (image_file, label_file)]
    if None in paths and download:
        _download(spec, data_root)
        paths = [_find_file(folders, f.name) for f in (image_file, label_file)]
    if None in paths:  # name every missing file of the dataset, so one download fixes it
        missing = [f.name for pair in spec.files.values() for f in pair
                   if _find_file(folders, f.name) is None]
        raise DataError(_missing_message(spec, missing, folders))
    images = read_idx(paths[0], image_file)
    labels = read_idx(paths[1], label_file)
    if images.shape[1:] != (28, 28):
        raise DataError(f"{paths[0]}: images are {images.shape[1:]}, expected 28x28")
    if len(images) != len(labels):
        raise DataError(f"{paths[0]}: {len(images)} images but {paths[1].name} has "
                        f"{len(labels)} labels")
    if labels.max() >= len(spec.classes):
        raise DataError(f"{paths[1]}: label {labels.max()} outside 0-{len(spec.classes) - 1}")
    return (torch.from_numpy(images.copy()).unsqueeze(1),
            torch.from_numpy(labels.astype(np.int64)))


def _load_cifar(spec: VisionSpec, split: str, data_root, download: bool):
    folders = [root / spec.folder for root in candidate_roots(data_root)]
    names = CIFAR_BATCHES[split]
    folder = next((f for f in folders if all((f / n).is_file() for n in names)), None)
    if folder is None and download:
        _download(spec, data_root)
        folder = next((f for f in folders if all((f / n).is_file() for n in names)), None)
    if folder is None:
        raise DataError(_missing_message(spec, names, folders))
    parts = [read_cifar_batch(folder / n) for n in names]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return torch.from_numpy(images), torch.from_numpy(labels)


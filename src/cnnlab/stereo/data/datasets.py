"""Stereo datasets in their official layouts, plus the synthetic set.

Each dataset is a list of samples; ``load(i)`` returns a ``StereoSample`` with uint8 RGB
images, float32 disparity (0 where unknown), the all-valid mask and, where the dataset has
them, the non-occluded mask and the foreground (KITTI 2015's object maps). Splits follow the
published PSMNet code: KITTI frames 0-159 train, 160+ val (see stereo.protocols on why by
frame number); SceneFlow FlyingThings3D TEST is the test set, everything else trains.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from cnnlab.data.image import open_image
from cnnlab.errors import ConfigError, DataError, shown_path
from cnnlab.stereo.data.io import (
    read_image,
    read_kitti_disparity,
    read_pfm_disparity,
    read_scaled_disparity,
)
from cnnlab.stereo.data.synthetic import render_pair

VAL_SEED = 9_999  # held-out synthetic scenes, never drawn for training (training uses 0+)
# (path, scale) -> (disparity float32 with 0 where unknown, valid mask)
DisparityReader = Callable[[Path, float], tuple[np.ndarray, np.ndarray]]


@dataclass
class StereoSample:
    name: str
    left: np.ndarray  # (H, W, 3) uint8
    right: np.ndarray
    disparity: np.ndarray  # (H, W) float32, 0 where unknown
    valid: np.ndarray  # (H, W) bool
    noc: np.ndarray | None = None  # non-occluded pixels, where the dataset says
    foreground: np.ndarray | None = None  # KITTI 2015 obj_map > 0 (cars), where present

    def __post_init__(self):
        if self.left.shape != self.right.shape:
            raise DataError(f"{self.name}: left {self.left.shape} and right {self.right.shape} "
                            "differ in size")
        if self.disparity.shape != self.left.shape[:2]:
            raise DataError(f"{self.name}: disparity {self.disparity.shape} does not match the "
                            f"images {self.left.shape[:2]}")
        for what, mask in (("non-occlusion mask", self.noc), ("object map", self.foreground)):
            if mask is not None and mask.shape != self.left.shape[:2]:
                raise DataError(f"{self.name}: {what} {mask.shape} does not match the images "
                                f"{self.left.shape[:2]}")


@dataclass
class _Entry:
    name: str
    left: Path
    right: Path
    disparity: Path | None
    noc: Path | None = None  # a disparity map whose valid pixels are the non-occluded ones...
    scale: float = 1.0  # Middlebury 2001/2003 8-bit GT scale
    noc_is_mask: bool = False  # ...or an 8-bit mask, 255 = non-occluded (Middlebury)
    objects: Path | None = None  # KITTI 2015 obj_map: 0 = background, > 0 = a car


def _require(folder: Path, what: str) -> Path:
    if not folder.is_dir():
        raise DataError(f"{what}: missing folder {shown_path(folder)}")
    return folder


def _frame_id(path: Path) -> int:
    digits = "".join(ch for ch in path.stem.split("_")[0] if ch.isdigit())
    return int(digits) if digits else 0


class StereoDataset(Dataset):
    """Pairs with ground truth: ``load(i)`` (also ``dataset[i]``) reads pair ``i``."""

    name = "stereo"

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, index: int) -> StereoSample:
        raise NotImplementedError

    def __getitem__(self, index: int) -> StereoSample:
        return self.load(index)

    def min_size(self, limit: int | None = None) -> tuple[int, int] | None:
        """The smallest height and the smallest width of the images (of the first ``limit``
        pairs, if given), without decoding any (None: not known up front)."""
        return None


class FileStereoDataset(StereoDataset):
    """Pairs listed as files, with the dataset's disparity format injected as ``read``."""

    def __init__(self, entries: list[_Entry], read: DisparityReader):
        self.entries = entries
        self.read_disparity = read

    def __len__(self) -> int:
        return len(self.entries)

    def min_size(self, limit: int | None = None) -> tuple[int, int] | None:
        """From the files' headers; unreadable files are left to ``load``, which names them."""
        sizes = []
        for entry in self.entries[:limit]:
            try:
                with Image.open(entry.left) as image:
                    sizes.append(image.size[::-1])
            except (OSError, ValueError, Image.DecompressionBombError):
                continue
        if not sizes:
            return None
        return min(h for h, _ in sizes), min(w for _, w in sizes)

    def load(self, index: int) -> StereoSample:
        entry = self.entries[index]
        left, right = read_image(entry.left), read_image(entry.right)
        if entry.disparity is None:
            raise DataError(f"{entry.left.parent}: no ground-truth disparity for {entry.left.name}")
        if not entry.disparity.is_file():
            raise DataError(f"{entry.disparity}: missing disparity for {entry.left}")
        disparity, valid = self.read_disparity(entry.disparity, entry.scale)
        noc = foreground = None
        if entry.noc is not None and entry.noc.is_file():
            noc = (read_mask(entry.noc) if entry.noc_is_mask
                   else self.read_disparity(entry.noc, entry.scale)[1])
            noc = noc & valid if noc.shape == valid.shape else noc  # else StereoSample refuses
        if entry.objects is not None and entry.objects.is_file():
            foreground = np.asarray(open_image(entry.objects)) > 0
        return StereoSample(entry.name, left, right, disparity, valid, noc, foreground)


def read_mask(path: Path) -> np.ndarray:
    """Middlebury's non-occlusion masks (mask0nocc.png, nonocc.png): 255 = non-occluded."""
    return np.asarray(open_image(path).convert("L")) == 255


def _split_by_frame(entries: list[_Entry], split: str, first_val: int) -> list[_Entry]:
    if split == "all":
        return entries
    if split not in ("train", "val"):
        raise DataError(f"{split}: not available here (KITTI's test pairs have no "
                        "public ground truth); use train, val or all", parameter="split")
    return [e for e in entries if (_frame_id(e.left) >= first_val) == (split == "val")]


def _read_kitti(path: Path, scale: float) -> tuple[np.ndarray, np.ndarray]:
    return read_kitti_disparity(path)


def _read_pfm(path: Path, scale: float) -> tuple[np.ndarray, np.ndarray]:
    return read_pfm_disparity(path)


def _read_middlebury(path: Path, scale: float) -> tuple[np.ndarray, np.ndarray]:
    return read_pfm_disparity(path) if path.suffix == ".pfm" else read_scaled_disparity(path,
                                                                                        scale)


class _KITTI(FileStereoDataset):
    """KITTI's training layout: left/right image folders, GT with occluded pixels (all) and,
    where present, without them (non-occluded)."""

    title = ""
    left_folder = right_folder = gt_folder = noc_folder = ""
    objects_folder: str | None = None

    def __init__(self, root: str | Path, split: str = "all"):
        train = _require(Path(root) / "training", self.title)
        left_dir = _require(train / self.left_folder, self.title)
        right_dir = _require(train / self.right_folder, self.title)
        gt_dir = _require(train / self.gt_folder, self.title)
        entries = []
        for left in sorted(left_dir.glob("*_10.png")):
            objects = train / self.objects_folder / left.name if self.objects_folder else None
            entries.append(_Entry(left.stem, left, right_dir / left.name, gt_dir / left.name,
                                  train / self.noc_folder / left.name, objects=objects))
        if not entries:
            raise DataError(f"{self.title}: no *_10.png pairs in {left_dir}")
        super().__init__(_split_by_frame(entries, split, 160), _read_kitti)


class KITTI2015(_KITTI):
    """training/image_2, image_3, disp_occ_0 (all), disp_noc_0 (non-occluded) and obj_map
    (foreground), where present."""

    name, title = "kitti2015", "KITTI 2015"
    left_folder, right_folder = "image_2", "image_3"
    gt_folder, noc_folder = "disp_occ_0", "disp_noc_0"
    objects_folder = "obj_map"


class KITTI2012(_KITTI):
    """training/colored_0, colored_1, disp_occ (all), disp_noc (non-occluded)."""

    name, title = "kitti2012", "KITTI 2012"
    left_folder, right_folder = "colored_0", "colored_1"
    gt_folder, noc_folder = "disp_occ", "disp_noc"


SCENEFLOW_SUBSETS = ("FlyingThings3D", "Monkaa", "Driving")


class SceneFlow(FileStereoDataset):
    """<subset>/frames_{cleanpass,finalpass}/.../left/*.png and <subset>/disparity/.../left/*.pfm
    for FlyingThings3D, Monkaa and Driving; FlyingThings3D/.../TEST/... is the test split."""

    name = "sceneflow"

    def __init__(self, root: str | Path, split: str = "train", render_pass: str = "cleanpass"):
        root = Path(root)
        subsets = [root / s for s in SCENEFLOW_SUBSETS if (root / s).is_dir()]
        if not subsets:
            raise DataError(f"SceneFlow: missing folder {shown_path(root / 'FlyingThings3D')} "
                            f"(or {', '.join(SCENEFLOW_SUBSETS[1:])})")
        if split not in ("train", "test", "all"):
            raise DataError(f"{split}: SceneFlow has train and test; use train, test or "
                        "all", parameter="split")
        entries = []
        for subset in subsets:
            frames = _require(subset / f"frames_{render_pass}", f"SceneFlow {subset.name}")
            disparity_root = _require(subset / "disparity", f"SceneFlow {subset.name}")
            for left in sorted(frames.rglob("left/*.png")):
                relative = left.relative_to(frames)
                is_test = "TEST" in relative.parts
                if split != "all" and is_test != (split == "test"):
                    continue
                right = left.parent.parent / "right" / left.name
                disparity = (disparity_root / relative).with_suffix(".pfm")
                name = f"{subset.name}/{relative.with_suffix('')}"
                entries.append(_Entry(name, left, right, disparity))
        if not entries:
            raise DataError(f"SceneFlow: no {split} pairs under {root}")
        super().__init__(entries, _read_pfm)


# Middlebury 2001 / 2003: (left, right, ground truth, scale) per scene
MIDDLEBURY_CLASSIC = {
    "tsukuba": ("im3.png", "im4.png", "disp3.pgm", 16.0),
    "venus": ("im2.png", "im6.png", "disp2.pgm", 8.0),
    "sawtooth": ("im2.png", "im6.png", "disp2.pgm", 8.0),
    "teddy": ("im2.png", "im6.png", "disp2.png", 4.0),
    "cones": ("im2.png", "im6.png", "disp2.png", 4.0),
}


class Middlebury(FileStereoDataset):
    """Scene folders: 2014/2021 (im0, im1, disp0GT.pfm, calib.txt, mask0nocc.png) or 2001/2003
    (im2/im6 with 8-bit GT and a scale factor per scene; tsukuba im3/im4, disp3.pgm; nonocc.png
    where the scene has one). The non-occlusion masks are read where present."""

    name = "middlebury"

    def __init__(self, root: str | Path, split: str = "all"):
        root = _require(Path(root), "Middlebury")
        entries = []
        for scene in sorted(p for p in root.iterdir() if p.is_dir()):
            if (scene / "im0.png").is_file():
                gt = scene / "disp0GT.pfm"
                entries.append(_Entry(scene.name, scene / "im0.png", scene / "im1.png",
                                      gt if gt.is_file() else None, scene / "mask0nocc.png",
                                      noc_is_mask=True))
            elif scene.name.lower() in MIDDLEBURY_CLASSIC:
                left, right, gt, scale = MIDDLEBURY_CLASSIC[scene.name.lower()]
                entries.append(_Entry(scene.name, scene / left, scene / right, scene / gt,
                                      scene / "nonocc.png", scale=scale, noc_is_mask=True))
        if not entries:
            raise DataError(f"Middlebury: no scene folders with im0.png/im1.png or a known "
                            f"2001/2003 scene ({', '.join(MIDDLEBURY_CLASSIC)}) in {root}")
        super().__init__(entries, _read_middlebury)


class SyntheticStereo(StereoDataset):
    """``count`` procedurally rendered pairs; pair i is the same for the same seed and size."""

    name = "synthetic"

    def __init__(self, count: int = 200, height: int = 256, width: int = 512,
                 max_disparity: float = 64.0, seed: int = 0, noise: float = 0.01):
        self.count, self.height, self.width = count, height, width
        self.max_disparity, self.seed, self.noise = max_disparity, seed, noise

    def __len__(self) -> int:
        return self.count

    def min_size(self, limit: int | None = None) -> tuple[int, int] | None:
        return self.height, self.width

    def load(self, index: int) -> StereoSample:
        pair = render_pair(self.height, self.width, self.max_disparity,
                           seed=self.seed * 1_000_003 + index, noise=self.noise)

        def to_uint8(image: torch.Tensor) -> np.ndarray:
            return (image.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)

        return StereoSample(f"synthetic/{self.seed}/{index}", to_uint8(pair.left),
                            to_uint8(pair.right), pair.disparity.numpy(),
                            pair.valid.numpy(), pair.noc.numpy())


DATASETS = {"kitti2015": KITTI2015, "kitti2012": KITTI2012, "sceneflow": SceneFlow,
            "middlebury": Middlebury}
DEFAULT_FOLDERS = {"kitti2015": "KITTI2015", "kitti2012": "KITTI2012", "sceneflow": "SceneFlow",
                   "middlebury": "Middlebury"}


def dataset_root(name: str, data_root: str | Path | None) -> Path:
    """The data root of a real dataset: ``data_root``, else the first of $CNNLAB_DATA (which
    ``cnnlab.setup()`` sets) and the user cache that holds its folder."""
    if data_root:
        return Path(data_root)
    from cnnlab.data.root import candidate_roots

    roots = candidate_roots(None)
    found = next((root for root in roots if (root / DEFAULT_FOLDERS.get(name, name)).is_dir()),
                 None)
    if found is None:
        raise ConfigError(f"is required for {name}: no {DEFAULT_FOLDERS.get(name, name)} folder "
                          f"in {' or '.join(str(r) for r in roots)} (cnnlab.setup() finds a "
                          "shared one)", parameter="data_root")
    return found


def open_dataset(name: str, root: str | Path, split: str = "all") -> StereoDataset:
    """A real dataset by name; ``root`` is its folder (or the data root that holds it)."""
    if name not in DATASETS:
        raise DataError(f"unknown stereo dataset {name!r}; choose from {', '.join(DATASETS)}")
    root = Path(root)
    nested = root / DEFAULT_FOLDERS[name]
    return DATASETS[name](nested if nested.is_dir() else root, split)

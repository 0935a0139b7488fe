"""Drop-in checks: a student's module put into the official PSMNet (KITTI 2015 weights) on a
real KITTI 2015 crop; its EPE against the unmodified model's and, when they differ, the first
module whose output differs.

The official model comes from ``load_model``, BN folded for inference; a student's module gets
the weights of the module it replaces by order (``transfer.copy_by_order``), which skips the
folded copies and takes the conv and BN tensors they were made from: the same numbers, so the
only differences left are rounding (the student's conv and BN run unfolded).

Where outputs differ is found with forward hooks registered in module order on both models;
each hook keeps a fingerprint of its module's output (a fixed sample of its values), never
the tensor itself: the 3-D stages hold ~100 MB each. The
first module in call order whose fingerprint differs is the one named.
"""

from __future__ import annotations

import copy
import functools
import math
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnlab.data.root import candidate_roots
from cnnlab.engine.card import ModelCard
from cnnlab.engine.weights import WEIGHTS_ENV
from cnnlab.errors import CnnlabError
from cnnlab.exercises.limits import limited
from cnnlab.exercises.result import Failure, Report, exception_text, shape_text
from cnnlab.stereo.data.io import read_image, read_kitti_disparity
from cnnlab.stereo.inference.methods import pair_outputs
from cnnlab.stereo.weights.registry import get_weights, load_model

WEIGHTS_NAME = "psmnet-kitti2015"
KITTI_PAIR = "000000_10"
# bottom-left: where the LiDAR ground truth is dense (the sky has none); 256x512 runs in ~2.3 s
# on 2 CPU cores in fp32, exact enough to compare EPEs to 1e-3 px
CROP_ROWS, CROP_COLS = slice(-256, None), slice(0, 512)
CROP_TEXT = f"KITTI 2015 {KITTI_PAIR}, bottom-left 256x512 crop (rows [-256:], cols [:512]), fp32"
EPE_TOLERANCE = 1e-3  # px
SAMPLES = 8192  # values kept per output tensor
RELATIVE_TOLERANCE = 1e-4  # of the output's magnitude: more than rounding


@dataclass(frozen=True)
class KittiCrop:
    left: np.ndarray  # (256, 512, 3) uint8
    right: np.ndarray
    disparity: np.ndarray  # (256, 512) float32
    valid: np.ndarray  # (256, 512) bool


def find_weights(weights_root: str | os.PathLike | None) -> tuple[Path | None, str]:
    """(the official KITTI 2015 file, '') or (None, where it was looked for and how to get it)."""
    entry = get_weights(WEIGHTS_NAME)
    path = entry.find(weights_root)
    if path is not None:
        return path, ""
    places = " or ".join(str(p) for p in entry.candidates(weights_root))
    return None, (f"{entry.file_name} not found in {places}; get it from {entry.origin} and "
                  f"pass weights_root= the folder holding {entry.folder}/{entry.file_name}, "
                  f"or set ${WEIGHTS_ENV}")


def find_kitti(data_root: str | os.PathLike | None) -> tuple[Path | None, str]:
    """(the KITTI 2015 folder holding the pair, '') or (None, where it was looked for). Without
    ``data_root``: $CNNLAB_DATA, the user cache, then ../shared/data from the working folder."""
    roots = candidate_roots(data_root)
    if data_root is None:
        roots.append(Path.cwd().parent / "shared" / "data")
    for root in roots:
        for folder in (root / "KITTI2015", root):  # the data root, or KITTI2015 itself
            if (folder / "training" / "image_2" / f"{KITTI_PAIR}.png").is_file():
                return folder, ""
    return None, (f"KITTI 2015 pair {KITTI_PAIR} not found under "
                  f"{' or '.join(str(r) for r in roots)} (KITTI2015/training/image_2, image_3, "
                  "disp_occ_0); pass data_root= the folder holding KITTI2015, or set "
                  "$CNNLAB_DATA")


def read_crop(folder: Path) -> KittiCrop:
    training = folder / "training"
    left = read_image(training / "image_2" / f"{KITTI_PAIR}.png")
    right = read_image(training / "image_3" / f"{KITTI_PAIR}.png")
    disparity, valid = read_kitti_disparity(training / "disp_occ_0" / f"{KITTI_PAIR}.png")
    crop = (CROP_ROWS, CROP_COLS)
    return KittiCrop(np.ascontiguousarray(left[crop]), np.ascontiguousarray(right[crop]),
                     disparity[crop], valid[crop])


def end_point_error(disparity: np.ndarray, crop: KittiCrop) -> float:
    """Mean |prediction - ground truth| over the crop's valid pixels, px."""
    return float(np.abs(disparity[crop.valid].astype(np.float64)
                        - crop.disparity[crop.valid]).mean())


# ------------------------------------------------------------------------------ fingerprints


@dataclass(frozen=True)
class _Print:
    shape: tuple[int, ...]
    samples: torch.Tensor  # up to SAMPLES values at fixed positions


@functools.lru_cache(maxsize=256)
def _sample_offsets(shape: tuple[int, ...], stride: tuple[int, ...]) -> torch.Tensor:
    """Storage offsets of SAMPLES evenly spaced positions (in row-major order) of a tensor
    with this shape and stride: the same logical values whatever its memory layout."""
    count = math.prod(shape)
    index = torch.linspace(0, count - 1, min(count, SAMPLES), dtype=torch.float64).long()
    coordinates = torch.unravel_index(index, shape)
    return sum(c * s for c, s in zip(coordinates, stride))


def _fingerprint(tensor: torch.Tensor) -> _Print:
    """A fixed sample of the values: a 1-D gather from storage, no copy of the tensor (a
    sum over every output would cost more than the network itself)."""
    tensor = tensor.detach()
    shape = tuple(tensor.shape)
    if tensor.numel() == 0 or tensor.dim() == 0:
        return _Print(shape, tensor.reshape(-1).clone().cpu())
    offsets = _sample_offsets(shape, tuple(tensor.stride()))
    storage = tensor.as_strided((int(offsets.max()) + 1,), (1,))
    # index_select: ~100x faster than indexing with a tensor here
    return _Print(shape, torch.index_select(storage, 0, offsets.to(tensor.device)).cpu())


def _tensors(output) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (list, tuple)):
        return [t for item in output for t in _tensors(item)]
    if isinstance(output, dict):
        return [t for key in sorted(output, key=str) for t in _tensors(output[key])]
    return []


Trace = list[tuple[str, int, list[_Print]]]  # (module name, call number, one per output)


@contextmanager
def traced(model: nn.Module, keep: Callable[[str], bool]) -> Iterator[Trace]:
    """Fingerprints of every kept module's outputs, in the order the calls finish."""
    trace: Trace = []
    calls: Counter = Counter()

    def hook(name: str, module: nn.Module, inputs, output) -> None:
        trace.append((name, calls[name], [_fingerprint(t) for t in _tensors(output)]))
        calls[name] += 1

    handles = [module.register_forward_hook(functools.partial(hook, name))
               for name, module in model.named_modules() if name and keep(name)]
    try:
        yield trace
    finally:
        for handle in handles:
            handle.remove()


def _difference(got: _Print, expected: _Print) -> str | None:
    """How ``got`` differs from ``expected`` beyond rounding, or None."""
    if got.shape != expected.shape:
        return f"shape {shape_text(got.shape)} instead of {shape_text(expected.shape)}"
    if got.samples.numel() == 0:
        return None
    reference, other = expected.samples.double(), got.samples.double()
    scale = max(float(reference.abs().max()), 1e-6)
    largest = float((other - reference).abs().nan_to_num(nan=math.inf).max())
    if not largest <= RELATIVE_TOLERANCE * scale:
        return f"max |difference| {largest:.3g} over {reference.numel()} sampled values"
    return None


def first_difference(official: Trace, yours: Trace, keep: Callable[[str], bool],
                     labels: dict[str, Sequence[str]]) -> str:
    """The first module (in call order) whose output differs, with which output and how."""
    by_call = {(name, number): prints for name, number, prints in yours}
    for name, number, prints in official:
        other = by_call.get((name, number))
        if not keep(name) or other is None:
            continue
        if len(other) != len(prints):
            return f"{name}: {len(other)} outputs instead of {len(prints)}"
        names = labels.get(name, ())
        differing = [(names[i] if i < len(names) else f"output {i}", detail)
                     for i, (got, expected) in enumerate(zip(other, prints))
                     if (detail := _difference(got, expected)) is not None]
        if differing:
            (label, detail), others = differing[0], [label for label, _ in differing[1:]]
            also = f"; {', '.join(others)} too" if others else ""
            return f"{name}: {label} differs ({detail}){also}"
    return "none beyond rounding (the difference builds up from rounding)"


# ---------------------------------------------------------------------------- the drop-in


@dataclass(frozen=True)
class OfficialRun:
    model: nn.Module  # never modified: drop-ins work on a copy
    card: ModelCard
    crop: KittiCrop
    epe: float
    trace: Trace


@functools.lru_cache(maxsize=2)
def official_run(weights_file: str, weights_root: str | None, kitti_folder: str) -> OfficialRun:
    """The unmodified official model on the crop, run once per weights file and data folder
    (``weights_file`` keys the cache: the file found may change with $CNNLAB_WEIGHTS)."""
    model, card = load_model(WEIGHTS_NAME, weights_root=weights_root)
    crop = read_crop(Path(kitti_folder))
    with traced(model, lambda name: True) as trace:
        disparity = pair_outputs(model, card, crop.left, crop.right, "fp32")["disparity"]
    return OfficialRun(model, card, crop, end_point_error(disparity, crop), trace)


# builds the student's module for the official one it replaces (raises Failure)
Maker = Callable[[nn.Module], nn.Module]


def drop_in_step(report: Report, makers: dict[str, Maker], labels: dict[str, Sequence[str]],
                 weights_root: str | os.PathLike | None, data_root: str | os.PathLike | None,
                 what: str) -> None:
    """One step of ``report``: the modules named in ``makers`` replaced by the student's in
    the official model; ok, FAILED, or skipped when the weights or the data are missing."""
    if report.stop_note():
        return
    weights_file, missing = find_weights(weights_root)
    if weights_file is None:
        report.skip(f"{what}: {missing}")
        return
    folder, missing = find_kitti(data_root)
    if folder is None:
        report.skip(f"{what}: {missing}")
        return
    try:
        official = official_run(str(weights_file),
                                None if weights_root is None else str(weights_root), str(folder))
    except CnnlabError as exc:  # a bad file or data folder: not the student's doing
        report.skip(f"{what}: the official model could not run: {exc}")
        return
    report.step(lambda: _drop_in(official, makers, labels, what, report))


def _inside(name: str, replaced: dict) -> bool:
    return any(name.startswith(prefix + ".") for prefix in replaced)


def _drop_in(official: OfficialRun, makers: dict[str, Maker], labels: dict[str, Sequence[str]],
             what: str, report: Report) -> str:
    model = copy.deepcopy(official.model)
    for name, make in makers.items():
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, make(official.model.get_submodule(name)))
    crop = official.crop

    def keep(name: str) -> bool:  # the student's own submodules have names of their own
        return not _inside(name, makers)

    with traced(model, keep) as trace, limited(f"{what}: the official model with your module "
                                               f"on {CROP_TEXT}"):
        try:
            disparity = pair_outputs(model, official.card, crop.left, crop.right,
                                     "fp32")["disparity"]
        except Exception as exc:  # student code may raise anything
            hint = ("; inputs arrive in channels_last memory format: use reshape, not view"
                    if "view" in str(exc) else "")
            raise Failure(f"{what}: the official model with your module raised "
                          f"{exception_text(exc)} on {CROP_TEXT}{hint}") from exc
    epe = end_point_error(disparity, crop)
    report.figures.update({"epe_official": official.epe, "epe_yours": epe})
    gap = abs(epe - official.epe)
    if not gap <= EPE_TOLERANCE:
        first = first_difference(official.trace, trace, keep, labels)
        raise Failure(f"{what}: EPE {epe:.4f} px with your module, {official.epe:.4f} px with "
                      f"the official one ({CROP_TEXT}); first module whose output differs: "
                      f"{first}")
    return (f"{what}: EPE {epe:.4f} px with your module, {official.epe:.4f} px official "
            f"(|difference| {gap:.1e} <= {EPE_TOLERANCE:g} px; {CROP_TEXT})")

"""Disparity, confidence, depth and a point cloud from any rectified stereo pair, by PSMNet or
SGBM; many pairs at once, and KITTI's submission format."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from cnnlab.engine.atomic import check_writable_folder
from cnnlab.engine.card import ModelCard
from cnnlab.errors import DataError
from cnnlab.stereo.choices import MIN_CONFIDENCE
from cnnlab.stereo.data.folder import read_ground_truth
from cnnlab.stereo.data.io import (
    Calibration,
    read_calibration,
    read_image,
    write_kitti_disparity,
    write_pfm,
)
from cnnlab.stereo.evaluation.metrics import error_counts, fill_holes_background, rates
from cnnlab.stereo.inference.confidence import left_right_consistent
from cnnlab.stereo.inference.methods import Method, psmnet_method
from cnnlab.stereo.inference.visualize import (
    colorize_disparity,
    colorize_error,
    plot_overview,
    point_cloud,
    save_png,
    write_ply,
)


def is_grey(image: np.ndarray) -> bool:
    return bool(np.array_equal(image[..., 0], image[..., 1])
                and np.array_equal(image[..., 1], image[..., 2]))


def vertical_offset(left: np.ndarray, right: np.ndarray, search: int = 12) -> int:
    """Row shift that best aligns the two views' horizontal-edge profiles (0 if rectified)."""
    def profile(image):
        grey = image.astype(np.float64).mean(axis=2)
        edges = np.abs(np.diff(grey, axis=0)).mean(axis=1)
        return (edges - edges.mean()) / (edges.std() + 1e-9)

    if left.shape[0] < 3:  # no row profile to compare
        return 0
    a, b = profile(left), profile(right)
    if not (a.any() and b.any()):  # a view without horizontal edges: nothing to align
        return 0
    search = min(search, (len(a) - 1) // 2)  # keep at least half the rows in every comparison
    best, best_score = 0, -np.inf
    for shift in range(-search, search + 1):
        x = a[max(shift, 0): len(a) + min(shift, 0)]
        y = b[max(-shift, 0): len(b) + min(-shift, 0)]
        score = float(np.mean(x * y))
        if score > best_score:
            best, best_score = shift, score
    return best


def pair_notes(left: np.ndarray, right: np.ndarray, left_name: str | Path,
               right_name: str | Path) -> list[str]:
    """What is worth knowing about a pair of equal-size views before trusting its disparity:
    grey views, and rows that look shifted (not rectified). ``left_name`` and ``right_name``
    say which view (a path, or the argument)."""
    notes = []
    for name, image in ((left_name, left), (right_name, right)):
        if is_grey(image):
            notes.append(f"{name}: greyscale image, replicated to RGB (the model was trained "
                         "on colour; expect lower accuracy)")
    offset = vertical_offset(left, right)
    if abs(offset) >= 2:
        shown = left_name.name if isinstance(left_name, Path) else left_name
        notes.append(f"{right_name}: rows look shifted by {offset} px against {shown}; "
                     "the pair may not be rectified (disparity assumes horizontal epipolar lines)")
    return notes


ORDER_WIDTH = 128  # the width the views are reduced to for ``view_shift``
ORDER_SEARCH = 0.25  # shifts searched either way, as a share of that width
ORDER_WINDOW = 2  # the matching window's half-size (5x5) at that width


def _small_grey(image: np.ndarray, factor: int) -> np.ndarray:
    grey = Image.fromarray(image).convert("L")
    if factor > 1:
        grey = grey.reduce(factor)
    values = np.asarray(grey, dtype=np.float32)
    return (values - values.mean()) / (values.std() + 1e-6)


def _box(volume: np.ndarray, radius: int) -> np.ndarray:
    """Sums over (2r+1)^2 windows of each (H, W) plane of a (S, H, W) volume ('valid' size)."""
    sums = np.cumsum(np.cumsum(np.pad(volume, ((0, 0), (1, 0), (1, 0))), axis=1), axis=2)
    k = 2 * radius + 1
    return sums[:, k:, k:] - sums[:, :-k, k:] - sums[:, k:, :-k] + sums[:, :-k, :-k]


@dataclass(frozen=True)
class ViewShift:
    """Which way the right view is shifted against the left, from ``view_shift``: the share of
    textured pixels that match best at a positive disparity (the right view's point lies to
    the left, as in a rectified left/right pair), a negative one (as when the views are
    swapped), or none; ``step`` is the resolution in full-size pixels."""

    positive: float
    negative: float
    zero: float
    step: int
    identical: bool = False

    @property
    def swapped(self) -> bool:
        return self.negative > 0.5 and self.negative > 3 * self.positive

    @property
    def unshifted(self) -> bool:
        return self.identical or self.zero > 0.9


def view_shift(left: np.ndarray, right: np.ndarray) -> ViewShift | None:
    """A cheap look (about 10 ms at 1242x375) at which way the views are shifted: both reduced
    to a grey copy about ``ORDER_WIDTH`` px wide, each textured pixel's best match among
    shifts up to ``ORDER_SEARCH`` of the width either way (5x5 windows of absolute
    differences). None when the views are too small to tell or have no texture."""
    if np.array_equal(left, right):
        return ViewShift(0.0, 0.0, 1.0, 1, identical=True)
    factor = max(1, -(-left.shape[1] // ORDER_WIDTH))
    one, other = _small_grey(left, factor), _small_grey(right, factor)
    height, width = one.shape
    search = int(width * ORDER_SEARCH)
    if search < 2 or height < 2 * ORDER_WINDOW + 1 or width - 2 * search < 2 * ORDER_WINDOW + 1:
        return None
    shifts = np.arange(-search, search + 1)
    inner = one[:, search:width - search]
    costs = _box(np.stack([np.abs(inner - other[:, search - s:width - search - s])
                           for s in shifts]), ORDER_WINDOW)
    spread = costs.max(axis=0) - costs.min(axis=0)
    textured = spread > max(0.5 * float(np.median(spread)), 1e-3)
    if textured.sum() < 16:
        return None
    won = shifts[costs.argmin(axis=0)][textured]
    return ViewShift(float((won > 0).mean()), float((won < 0).mean()), float((won == 0).mean()),
                     factor)


def pair_warnings(left: np.ndarray, right: np.ndarray, left_name: str | Path,
                  right_name: str | Path) -> list[str]:
    """What makes a pair's disparity wrong whatever the method: a view with nothing to match
    (one value everywhere), the same image twice, and views given in the wrong order (the
    right one shifted the other way), from ``view_shift``."""
    one, other = (n.name if isinstance(n, Path) else n for n in (left_name, right_name))
    for name, image in ((one, left), (other, right)):
        if image.min() == image.max():
            return [f"{name} has the same value in every pixel: there is nothing to match, and "
                    "no disparity can be measured"]
    shift = view_shift(left, right)
    if shift is None:
        return []
    if shift.identical:
        return [f"{one} and {other} are the same image: the true disparity is 0 everywhere, "
                "whatever the map shows"]
    if shift.unshifted:
        return [f"{other} matches {one} with no horizontal shift (to within {shift.step} px): "
                "the same view twice? Then the true disparity is 0 everywhere, whatever the "
                "map shows"]
    if shift.swapped:
        return [f"the views look swapped: {100 * shift.negative:.0f}% of {one}'s textured "
                f"pixels find their match to the right in {other}, where a left view's lie to "
                f"the left ({100 * shift.positive:.0f}% here); give the left view first"]
    return []


def check_pair(left_path: Path, right_path: Path
               ) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Read both views; errors for size mismatch; notes for grey or unrectified-looking pairs;
    warnings for pairs no method can answer right (see ``pair_warnings``)."""
    left, right = read_image(left_path), read_image(right_path)
    if left.shape != right.shape:
        raise DataError(f"{right_path}: size {right.shape[1]}x{right.shape[0]} differs from "
                        f"{left_path.name} ({left.shape[1]}x{left.shape[0]}); a rectified pair "
                        "has equal sizes")
    return (left, right, pair_notes(left, right, left_path, right_path),
            pair_warnings(left, right, left_path, right_path))


# written only with --gt, a calibration, a confidence or the LR check: removed when this run
# does not write them
OPTIONAL_OUTPUTS = ("{stem}_overview.png", "{stem}_error.png", "{stem}_depth.pfm", "{stem}.ply",
                    "{stem}_confidence.png", "{stem}_lr.png")
OUTPUTS = ("{stem}_disp.png", "{stem}_disp.pfm", "{stem}_disp_color.png",
           *OPTIONAL_OUTPUTS)  # every file write_prediction may write (or remove)


def check_spares_inputs(out_dir: Path, stems: list[str], inputs: list[Path | None],
                        parameter: str = "out") -> None:
    """Refuse, before anything is written, outputs in ``out_dir`` named ``stems`` that would
    replace (or remove, as stale) one of the ``inputs`` (the pairs' images, ground truth):
    ``engine.atomic.check_spares_inputs`` on this command's file names."""
    from cnnlab.engine.atomic import check_spares_inputs as refuse_overwrite

    refuse_overwrite([Path(out_dir) / name.format(stem=stem) for stem in stems
                      for name in OUTPUTS], inputs, parameter)


SATURATION_LEVEL = 0.95  # of the searched range: a disparity above it sits at the top...
SATURATION_SHARE = 0.01  # ...and a share of pixels above this is worth a warning


@dataclass
class PairInputs:
    """Everything ``stereo predict`` reads before inference, checked: the views, the notes about
    them, the calibration and the ground truth (disparity, valid mask)."""

    left_path: Path
    left: np.ndarray
    right: np.ndarray
    notes: list[str]
    calibration: Calibration | None = None
    truth: tuple[np.ndarray, np.ndarray] | None = None
    stem: str = ""  # output file names start with it (default: the left file's stem)
    warnings: list[str] = field(default_factory=list)  # see ``pair_warnings``

    def __post_init__(self) -> None:
        self.stem = self.stem or self.left_path.stem


def read_pair_inputs(left_path: Path, right_path: Path, calibration: Calibration | None = None,
                     calib_file: Path | None = None, ground_truth: Path | None = None,
                     gt_format: str = "auto", gt_scale: float = 1.0, stem: str = ""
                     ) -> PairInputs:
    """Read and check a pair and its optional calibration and ground truth (any format
    ``stereo.folder.read_ground_truth`` reads), so that a bad file is refused before a model
    is loaded and inference runs, not after."""
    left, right, notes, warnings = check_pair(Path(left_path), Path(right_path))
    if calib_file is not None:
        calibration = read_calibration(Path(calib_file))
    truth = None
    if ground_truth is not None:
        truth = read_ground_truth(Path(ground_truth), gt_format, gt_scale)
        if truth[0].shape != left.shape[:2]:
            raise DataError(f"{ground_truth}: size {truth[0].shape[1]}x{truth[0].shape[0]} "
                            f"differs from the images ({left.shape[1]}x{left.shape[0]})")
    return PairInputs(Path(left_path), left, right, notes, calibration, truth, stem, warnings)


@dataclass
class Prediction:
    disparity: np.ndarray  # (H, W) float32
    valid: np.ndarray  # the pixels the method produced
    confidence: np.ndarray | None = None
    consistent: np.ndarray | None = None  # the left-right check, where it ran
    seconds: float = 0.0

    def kept(self, min_confidence: float) -> np.ndarray:
        """The pixels a filter keeps: produced, consistent (where checked) and at least
        ``min_confidence`` confident (where there is a confidence)."""
        kept = self.valid.copy()
        if self.consistent is not None:
            kept &= self.consistent
        if self.confidence is not None:
            kept &= self.confidence >= min_confidence
        return kept


def predict_views(method: Method, left: np.ndarray, right: np.ndarray, lr_check: bool = False
                  ) -> Prediction:
    """``method`` on a pair; with ``lr_check`` also on the mirrored pair (the right view's
    disparity, as PSMNet has no right-view output), and the left-right consistency of both."""
    started = time.perf_counter()
    outputs = method.run(left, right)
    consistent = None
    if lr_check:  # mirrored, the right view becomes a left view with the same disparities
        mirrored = method.run(np.ascontiguousarray(right[:, ::-1]),
                              np.ascontiguousarray(left[:, ::-1]), rated=False)
        right_disparity = np.where(mirrored["valid"], mirrored["disparity"], -1e6)[:, ::-1]
        consistent = outputs["valid"] & left_right_consistent(outputs["disparity"],
                                                              right_disparity)
    return Prediction(outputs["disparity"], outputs["valid"], outputs.get("confidence"),
                      consistent, time.perf_counter() - started)


def disparity_needed(calibration: Calibration, min_depth: float) -> float:
    """The disparity (px) of a point ``min_depth`` metres away: d = f B / Z - doffs."""
    return calibration.focal * calibration.baseline / min_depth - calibration.doffs


def range_advice(calibration: Calibration, min_depth: float, searched: int) -> tuple[str, bool]:
    """A line saying which range the nearest depth needs against the one searched, and whether
    the searched range falls short."""
    needed = disparity_needed(calibration, min_depth)
    suggested = max(16, math.ceil(needed / 16) * 16)
    nearest = calibration.focal * calibration.baseline / (searched + calibration.doffs)
    line = (f"a point {min_depth:g} m away has a disparity of {needed:.1f} px (focal "
            f"{calibration.focal:.1f} px, baseline {calibration.baseline:.4g} m); the "
            f"searched range of {searched} px reaches down to {nearest:.2f} m")
    if needed > searched:
        return line + f": pass --max-disparity {suggested} to cover it", True
    return line, False


def saturation(prediction: Prediction, searched: int) -> float:
    """The share of produced pixels at the top of the searched range (>= 95% of it)."""
    produced = prediction.valid
    if not produced.any():
        return 0.0
    return float((prediction.disparity[produced] >= SATURATION_LEVEL * searched).mean())


def saturation_warning(share: float, searched: int) -> str | None:
    """A warning when more than SATURATION_SHARE of the pixels (``share``, see ``saturation``)
    sit at the top of the ``searched`` range."""
    if share <= SATURATION_SHARE:
        return None
    return (f"{100 * share:.1f}% of the pixels sit at the top of the searched range (>= "
            f"{SATURATION_LEVEL * searched:.0f} of {searched} px): nearer surfaces are cut off, "
            "or a textureless area (sky) is stuck there; see max_disparity and min_depth")


def _grey(values: np.ndarray) -> np.ndarray:
    return (np.clip(values, 0, 1) * 255 + 0.5).astype(np.uint8)


def write_prediction(method: Method, prediction: Prediction, inputs: PairInputs, out_dir: Path,
                     filter_pixels: bool = False, min_confidence: float = MIN_CONFIDENCE,
                     overview: bool = True) -> dict:
    """Write disparity (KITTI PNG, PFM, colour PNG, the overview figure unless ``overview`` is
    False), with ground truth the error map, the confidence and left-right maps where
    computed, and with a calibration depth and a PLY (only the kept pixels with
    ``filter_pixels``). Returns what was written and measured. The overview is most of the
    writing: 0.3 of 0.4 s per KITTI pair, a fifth of the bf16 forward pass."""
    out_dir = Path(out_dir)
    stem, left, calibration = inputs.stem, inputs.left, inputs.calibration
    disparity, valid = prediction.disparity, prediction.valid
    scale_max = method.max_disparity * 0.75
    outputs = {
        "disparity_png": write_kitti_disparity(out_dir / f"{stem}_disp.png", disparity, valid),
        # PFM's "no value" is infinity (Middlebury's convention, which every reader of
        # ground truth here follows); KITTI's 16-bit PNG has 0 for it
        "disparity_pfm": write_pfm(out_dir / f"{stem}_disp.pfm",
                                   np.where(valid, disparity, np.inf).astype(np.float32)),
        "color_png": save_png(out_dir / f"{stem}_disp_color.png",
                              colorize_disparity(disparity, scale_max, valid)),
    }
    kept = prediction.kept(min_confidence) if filter_pixels else valid
    result = {"method": method.name, "notes": list(inputs.notes),
              "warnings": list(inputs.warnings),
              "size": list(disparity.shape), "seconds": round(prediction.seconds, 3),
              "density": float(valid.mean()), "kept": float(kept.mean()),
              "disparity_range": ([float(disparity[valid].min()), float(disparity[valid].max())]
                                  if valid.any() else None)}
    if prediction.confidence is not None:
        outputs["confidence_png"] = save_png(out_dir / f"{stem}_confidence.png",
                                             _grey(prediction.confidence))
        result["mean_confidence"] = float(prediction.confidence.mean())
    if prediction.consistent is not None:
        outputs["lr_png"] = save_png(out_dir / f"{stem}_lr.png", _grey(prediction.consistent))
        result["consistent"] = float(prediction.consistent.mean())
    share = saturation(prediction, method.max_disparity)
    result["saturated"] = share
    warning = saturation_warning(share, method.max_disparity)
    if warning:
        result["warnings"].append(warning)
    error_image = None
    if inputs.truth is not None:
        target, truth_valid = inputs.truth
        filled = (disparity if valid.all() else fill_holes_background(disparity, valid))
        result["metrics"] = rates(error_counts(torch.from_numpy(filled),
                                               torch.from_numpy(target),
                                               torch.from_numpy(truth_valid)))
        if filter_pixels:
            result["metrics_kept"] = rates(error_counts(
                torch.from_numpy(disparity), torch.from_numpy(target),
                torch.from_numpy(truth_valid & kept)))
        error_image = colorize_error(filled, target, truth_valid)
        outputs["error_png"] = save_png(out_dir / f"{stem}_error.png", error_image)
    if overview:
        outputs["overview_png"] = plot_overview(
            out_dir / f"{stem}_overview.png", left, np.where(valid, disparity, 0), scale_max,
            error_image, f"{inputs.left_path.name}: {method.title}", prediction.confidence)
    if calibration is not None:
        depth = np.where(kept, calibration.depth(disparity), 0).astype(np.float32)
        outputs["depth_pfm"] = write_pfm(out_dir / f"{stem}_depth.pfm",
                                         np.where(depth > 0, depth, np.inf).astype(np.float32))
        xyz, rgb = point_cloud(depth, left, calibration.focal)
        outputs["ply"] = write_ply(out_dir / f"{stem}.ply", xyz, rgb)
        result["points"] = len(xyz)
        result["median_depth_m"] = float(np.median(depth[depth > 0])) if (depth > 0).any() \
            else None
    for name in OPTIONAL_OUTPUTS:  # this pair's files from an earlier run would mislead
        stale = out_dir / name.format(stem=stem)
        if stale.is_file() and stale not in outputs.values():
            stale.unlink()
    result["outputs"] = {k: str(v) for k, v in outputs.items()}
    return result


def predict_inputs(model: nn.Module, card: ModelCard, inputs: PairInputs, out_dir: Path,
                   log: Callable[[str], None] | None = None, precision: str = "fp32",
                   scale: float = 1.0) -> dict:
    """PSMNet on inputs already read and checked (see ``read_pair_inputs``), its outputs
    written into ``out_dir`` (see ``write_prediction``)."""
    check_writable_folder(out_dir, "--out")
    method = psmnet_method(model, card, precision, scale)
    if log is not None:
        scaled = f", scaled by {scale:.3g}" if scale != 1 else ""
        log(f"Running {card.architecture} in {precision} on {inputs.left.shape[1]}x"
            f"{inputs.left.shape[0]} ({inputs.left.shape[0] * inputs.left.shape[1] / 1e6:.2f} "
            f"megapixels{scaled})...")
    prediction = predict_views(method, inputs.left, inputs.right)
    return write_prediction(method, prediction, inputs, out_dir) | {"precision": precision,
                                                                   "scale": scale}


def predict_pair(model: nn.Module, card: ModelCard, left_path: Path, right_path: Path,
                 out_dir: Path, calibration: Calibration | None = None,
                 calib_file: Path | None = None, ground_truth: Path | None = None,
                 log: Callable[[str], None] | None = None, precision: str = "fp32",
                 scale: float = 1.0) -> dict:
    """Write disparity (KITTI PNG, PFM, colour PNG), confidence, error map, depth and PLY into
    ``out_dir``: the notebook's one call."""
    check_writable_folder(out_dir, "--out")  # before the inputs are read
    inputs = read_pair_inputs(left_path, right_path, calibration, calib_file, ground_truth)
    return predict_inputs(model, card, inputs, out_dir, log, precision, scale)

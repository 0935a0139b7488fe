"""Many pairs at once, as ``stereo predict`` runs them: ``plan_pairs`` finds every pair (two files,
two folders, glob patterns, a list file or Python lists) and checks every input before a model
is loaded; ``run_pairs`` predicts them one at a time, reporting a bad pair and going on, and
writes each pair's files or a KITTI submission."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cnnlab.engine.atomic import check_spares_inputs, check_writable_folder
from cnnlab.errors import CnnlabError, ConfigError, DataError, shown_path
from cnnlab.stereo.data.folder import Pair
from cnnlab.stereo.data.io import Calibration
from cnnlab.stereo.data.pairs import check_pair_headers, output_stems, resolve_pairs
from cnnlab.stereo.data.submission import (
    FOLDER,
    archive_path,
    check_submission_names,
    write_submission_png,
    zip_submission,
)
from cnnlab.stereo.inference import predict  # by module: what tests patch there applies here too
from cnnlab.stereo.inference.predict import MIN_CONFIDENCE, OUTPUTS, PairInputs
from cnnlab.stereo.results import FolderPrediction

if TYPE_CHECKING:
    from cnnlab.stereo.api import StereoModel

Log = Callable[[str], None]
Paths = str | os.PathLike | Sequence[str | os.PathLike]


@dataclass
class PairPlan:
    """The pairs to run, checked: their (height, width), output stems, where the outputs go,
    and the single pair's inputs already read (a lone pair is read whole before a model
    loads)."""

    pairs: list[Pair]
    sizes: list[tuple[int, int]]
    stems: list[str]
    out: Path
    calibration: Calibration | None = None
    gt_format: str = "auto"
    gt_scale: float = 1.0
    submission: Path | None = None
    first: PairInputs | None = None

    @property
    def single(self) -> bool:
        return len(self.pairs) == 1


def _listed_pairs(left: Sequence, right: Sequence, gt: Sequence | None) -> list[Pair]:
    """Pairs from Python lists of files, position by position."""
    if not isinstance(right, (list, tuple)) or len(right) != len(left):
        raise ConfigError(f": {len(left)} left files need as many right ones, as a list",
                          parameter="right")
    if gt is not None and (not isinstance(gt, (list, tuple)) or len(gt) != len(left)):
        raise ConfigError(f": {len(left)} pairs need as many ground-truth files, as a list",
                          parameter="gt")
    if not left:
        raise ConfigError(": an empty list", parameter="left")
    pairs = []
    for index, (one, other) in enumerate(zip(left, right)):
        one, other = Path(one).expanduser(), Path(other).expanduser()
        for path, name in ((one, "left"), (other, "right")):
            if not path.is_file():
                raise DataError(f"[{index}] {shown_path(path)}: no such file", parameter=name)
        truth = Path(gt[index]).expanduser() if gt is not None and gt[index] else None
        pairs.append((one.stem, one, other, truth))
    return pairs


def plan_pairs(left: Paths | None, right: Paths | None, out: str | os.PathLike, *,
               pair_list: str | os.PathLike | None = None, gt: Paths | None = None,
               gt_format: str = "auto", gt_scale: float = 1.0,
               calibration: Calibration | None = None,
               kitti_submission: str | os.PathLike | None = None,
               inputs: Sequence[str | os.PathLike] = ()) -> PairPlan:
    """Every pair ``left``/``right`` name (files, folders, glob patterns, or lists of files;
    or ``pair_list``, a text file of 'left right [ground truth]' lines), found and checked:
    readable headers, equal sizes, ground truth present, outputs that overwrite no input,
    KITTI frame names for ``kitti_submission``. ``inputs``: other files read (the model's),
    which no output may overwrite either. Nothing is predicted yet."""
    out = Path(out).expanduser()
    submission = Path(kitti_submission).expanduser() if kitti_submission else None
    if submission is not None:
        check_writable_folder(submission, "kitti_submission")
        check_writable_folder(archive_path(submission).parent, "kitti_submission")
    else:
        check_writable_folder(out, "out")
    if isinstance(left, (list, tuple)):
        pairs = _listed_pairs(left, right, gt)  # type: ignore[arg-type]
    else:
        if pair_list is None and (left is None or right is None):
            raise ConfigError("is required (files, folders or glob patterns), or `pair_list`",
                              parameter="left" if left is None else "right")
        pairs = resolve_pairs(None if left is None else str(left),
                              None if right is None else str(right),
                              None if pair_list is None else str(pair_list),
                              None if gt is None else str(gt))  # type: ignore[arg-type]
    sizes = check_pair_headers(pairs)
    stems = output_stems(pairs)
    read = [p for _, *files in pairs for p in files] + [pair_list, *inputs]
    if submission is not None:
        check_submission_names(stems)
        check_spares_inputs([submission / FOLDER / f"{stem}.png" for stem in stems]
                            + [archive_path(submission)], read, "kitti_submission")
    else:
        check_spares_inputs([out / name.format(stem=stem) for stem in stems for name in OUTPUTS],
                            read, "out")
    first = None
    if len(pairs) == 1:  # the whole pair read and checked now
        _, one, other, truth = pairs[0]
        first = predict.read_pair_inputs(one, other, calibration, None, truth, gt_format,
                                         gt_scale, stems[0])
    return PairPlan(pairs, sizes, stems, out, calibration, gt_format, gt_scale, submission,
                    first)


def run_pairs(model: StereoModel, plan: PairPlan, *, lr_check: bool = False,
              filter_pixels: bool = False, min_confidence: float = MIN_CONFIDENCE,
              tiles: list[tuple[int, int] | None] | None = None, log: Log | None = None,
              note: Log | None = None, overview: bool = True) -> FolderPrediction:
    """``model`` on every pair of ``plan``, one at a time: a pair that fails to read is reported
    (``note``) and skipped, the others go on. Progress goes to ``log`` (a line per pair when
    there are several), notes and warnings to ``note`` (default: ``log``). ``tiles``: each
    pair's tile, as ``model.tiles_for(plan.sizes)`` decides by default; ``overview`` False
    leaves each pair's overview figure out."""
    note = note or log
    tiles = model.tiles_for(plan.sizes) if tiles is None else tiles
    total = len(plan.pairs)
    rows, failures, written = [], [], []
    for index, ((name, left, right, truth), stem, tile) in enumerate(
            zip(plan.pairs, plan.stems, tiles)):
        try:
            inputs = plan.first if plan.first is not None else predict.read_pair_inputs(
                left, right, plan.calibration, None, truth, plan.gt_format, plan.gt_scale, stem)
        except CnnlabError as exc:  # a bad pair among many is reported, the others go on
            if note:
                note(f"[{index + 1}/{total}] {name}: error: {exc}")
            failures.append((name, str(exc)))
            continue
        method = model.method(tile)
        height, width = inputs.left.shape[:2]
        if plan.single and note:
            how = (f" in {model.precision}" if model.precision else "") + (
                f", scaled by {model.scale:.3g}" if model.scale != 1 else "") + (
                f", {tile[0]}x{tile[1]} tiles" if tile else "")
            note(f"Running {method.title}{how} on {width}x{height} "
                 f"({height * width / 1e6:.2f} megapixels)...")
        prediction = predict.predict_views(method, inputs.left, inputs.right, lr_check)
        if plan.submission is not None:
            written.append(write_submission_png(plan.submission, stem, prediction.disparity,
                                                prediction.valid))
            result = {"seconds": round(prediction.seconds, 3), "notes": inputs.notes,
                      "warnings": list(inputs.warnings),
                      "outputs": {"disparity_png": str(written[-1])},
                      "size": [height, width]}
        else:
            result = predict.write_prediction(method, prediction, inputs, plan.out,
                                              filter_pixels, min_confidence, overview)
        valid = prediction.valid
        result |= {"name": name, "stem": stem, "tile": list(tile) if tile else None,
                   "disparity_range": ([float(prediction.disparity[valid].min()),
                                        float(prediction.disparity[valid].max())]
                                       if valid.any() else None)}
        rows.append(result)
        if not plan.single and log:
            low_high = (f", {result['disparity_range'][0]:.1f} to "
                        f"{result['disparity_range'][1]:.1f} px" if valid.any() else "")
            metric = (f", EPE {result['metrics']['epe']:.3f} px, D1 "
                      f"{result['metrics']['d1']:.2f}%" if "metrics" in result else "")
            tiled = f" on {tile[0]}x{tile[1]} tiles" if tile else ""
            log(f"[{index + 1}/{total}] {name}: {width}x{height}{tiled} in "
                f"{prediction.seconds:.1f} s{low_high}{metric}")
        if note:
            for line in result["notes"]:
                note(f"note: {line}")
            for warning in result["warnings"]:
                note(f"warning: {name}: {warning}")
    archive, archive_notes = None, []
    if plan.submission is not None and written:
        archive, archive_notes = zip_submission(plan.submission, written)
    return FolderPrediction(rows, failures, total, None if plan.submission else plan.out,
                            plan.submission, archive, archive_notes)

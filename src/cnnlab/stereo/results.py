"""What the public stereo calls return: results that display themselves in a notebook (a short
``repr``, ``_repr_png_`` / ``_repr_html_``) and save themselves, so that a notebook never draws a
colour bar or a table by hand.

``Disparity`` (one pair: the map, ``score``, ``depth``, ``point_cloud``, ``show``, ``save``),
``Scores``, ``PointCloud``, ``FolderPrediction`` (many pairs), ``Evaluation`` and ``Report``.
"""

from __future__ import annotations

import html
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.engine.atomic import atomic_write_json, check_writable_folder
from cnnlab.engine.card import ModelCard
from cnnlab.errors import ConfigError, DataError, shown_path
from cnnlab.stereo.choices import CONFIDENCE_LEVEL
from cnnlab.stereo.data.folder import read_ground_truth
from cnnlab.stereo.data.io import Calibration, read_calibration
from cnnlab.stereo.evaluation.metrics import region_counts
from cnnlab.stereo.inference.methods import Method
from cnnlab.stereo.inference.predict import (
    MIN_CONFIDENCE,
    PairInputs,
    Prediction,
    check_spares_inputs,
    write_prediction,
)
from cnnlab.stereo.inference.views import a_kind

SCALE_SHARE = 0.75  # colours span this share of the searched range, as stereo predict draws
SHOWN_ROWS = 20  # rows a repr lists before "... and N more"


def _table_html(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(cell))}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row)
                   + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def check_json_file(path: str | os.PathLike, parameter: str = "path") -> Path:
    """``path`` as the name of a JSON file to write, or a one-line error naming
    ``parameter`` (a folder is not one)."""
    if Path(path).is_dir():
        raise ConfigError(f"{path}: a folder; give the name of a file to write",
                          parameter=parameter)
    return Path(path)


def as_calibration(calibration: object) -> Calibration:
    """A Calibration from itself, a calibration file (KITTI calib_cam_to_cam / calib,
    Middlebury calib.txt), (focal px, baseline m[, doffs]) or {"focal", "baseline"}."""
    if isinstance(calibration, Calibration):
        return calibration
    if isinstance(calibration, (str, os.PathLike)):
        path = Path(calibration).expanduser()
        if not path.is_file():
            raise DataError(f"{shown_path(path)}: no such file", parameter="calibration")
        return read_calibration(path)
    try:
        if isinstance(calibration, dict):
            return Calibration(**calibration)
        if isinstance(calibration, (tuple, list)) and len(calibration) in (2, 3):
            return Calibration(*(float(v) for v in calibration))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f": {exc}", parameter="calibration") from None
    raise ConfigError(f": {a_kind(calibration)}; give a calibration file, a "
                      "Calibration, or (focal_px, baseline_m)", parameter="calibration")


def ground_truth(gt: object, shape: tuple[int, int], gt_format: str = "auto",
                 gt_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(disparity, valid) from a ground-truth file (any format ``read_ground_truth`` reads), an
    (H, W) array (valid: finite and > 0; the stored value is disparity x ``gt_scale``) or a
    (disparity, valid) pair; its size must be ``shape``."""
    if not isinstance(gt, (str, os.PathLike)) and gt_format != "auto":
        raise ConfigError(": only for a ground-truth file; an array holds the values "
                          "themselves", parameter="gt_format")
    if isinstance(gt, tuple) and gt_scale != 1:
        raise ConfigError(": not used with a (disparity, valid) pair, which holds disparities "
                          "in pixels", parameter="gt_scale")
    if isinstance(gt, (str, os.PathLike)):
        path = Path(gt).expanduser()
        if not path.is_file():
            raise DataError(f"{shown_path(path)}: no such file", parameter="gt")
        target, valid = read_ground_truth(path, gt_format, gt_scale)
    elif isinstance(gt, tuple) and len(gt) == 2:
        target = np.asarray(gt[0], dtype=np.float32)
        valid = np.asarray(gt[1], dtype=bool) & np.isfinite(target)
    elif isinstance(gt, np.ndarray):
        if gt.dtype == np.bool_ or gt.dtype.kind not in "iuf":
            raise ConfigError(f": a {gt.dtype} array; expected disparities in pixels",
                              parameter="gt")
        values = gt.astype(np.float64) / gt_scale
        valid = np.isfinite(values) & (values > 0)
        target = np.where(valid, values, 0).astype(np.float32)
    else:
        raise ConfigError(f": {a_kind(gt)}; give a ground-truth file, an (H, W) array "
                          "or (disparity, valid)", parameter="gt")
    if target.shape != tuple(shape) or valid.shape != tuple(shape):
        raise DataError(f": {target.shape[-1]}x{target.shape[0]} differs from the disparity's "
                        f"{shape[1]}x{shape[0]}", parameter="gt")
    if not valid.any():  # a score on no pixel would read as a perfect 0
        raise DataError(": no pixel with ground truth (all 0, negative or not finite); "
                        "nothing to score", parameter="gt")
    largest = float(target[valid].max())
    if not isinstance(gt, (str, os.PathLike)) and largest > shape[1]:  # files are decoded
        raise DataError(f": values up to {largest:.0f} px, more than the image is wide "
                        f"({shape[1]} px), so not disparities in pixels; a KITTI PNG read raw "
                        "holds disparity x 256 (give `gt_scale` 256, or the file's path)",
                        parameter="gt")
    return np.where(valid, target, 0).astype(np.float32), valid


@dataclass(frozen=True)
class Scores:
    """A disparity map against ground truth, as KITTI scores it: EPE (px), D1 (error > 3 px and
    > 5% of the truth, %), bad-1/2/3 (error > t px, %), on ``pixels`` pixels with ground truth;
    holes (``density`` < 1) filled by KITTI's background interpolation first."""

    epe: float
    d1: float
    bad1: float
    bad2: float
    bad3: float
    pixels: int
    density: float = 1.0

    @classmethod
    def of(cls, disparity: np.ndarray, valid: np.ndarray, target: np.ndarray,
           truth_valid: np.ndarray) -> Scores:
        if not truth_valid.any():
            raise DataError(": no pixel with ground truth (all 0, negative or not finite); "
                            "nothing to score", parameter="gt")
        _, counts = region_counts(disparity, valid, target, {"all": truth_valid})
        scored = counts["all"]
        pixels = scored["pixels"]
        return cls(scored["abs_error"] / pixels, 100 * scored["d1"] / pixels,
                   100 * scored["bad1"] / pixels, 100 * scored["bad2"] / pixels,
                   100 * scored["bad3"] / pixels, int(pixels), float(valid.mean()))

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def __repr__(self) -> str:
        holes = f", {100 * self.density:.1f}% dense" if self.density < 1 else ""
        return (f"Scores(EPE {self.epe:.3f} px, D1 {self.d1:.2f}%, bad-1 {self.bad1:.2f}%, "
                f"bad-2 {self.bad2:.2f}%, bad-3 {self.bad3:.2f}% on {self.pixels:,} pixels"
                f"{holes})")


@dataclass(eq=False, repr=False)
class PointCloud:
    """Points in metres (camera frame: x right, y down, z forward) with their colours."""

    xyz: np.ndarray  # (N, 3) float32
    rgb: np.ndarray  # (N, 3) uint8

    def __len__(self) -> int:
        return len(self.xyz)

    def save(self, path: str | os.PathLike) -> Path:
        """A binary PLY file (atomically), as ``stereo predict`` writes."""
        from cnnlab.stereo.inference.visualize import write_ply

        return write_ply(Path(path), self.xyz, self.rgb)

    def __repr__(self) -> str:
        if not len(self):
            return "PointCloud(0 points)"
        z = self.xyz[:, 2]
        return f"PointCloud({len(self):,} points, depth {z.min():.2f} to {z.max():.2f} m)"


@dataclass(eq=False, repr=False)
class Disparity:
    """One pair's disparity: ``np.asarray(result)`` is the (H, W) float32 map in pixels (0 where
    the method gave none: ``valid``), with the ``confidence`` where the method rates its pixels
    (PSMNet), the left-right ``consistent`` pixels where that check ran, and what is worth
    knowing (``notes``, ``warnings``). In a notebook it shows itself in KITTI's colours."""

    disparity: np.ndarray  # (H, W) float32
    valid: np.ndarray  # (H, W) bool: the pixels the method produced
    left: np.ndarray  # (H, W, 3) uint8, as the method saw it
    right: np.ndarray
    method: Method  # its name, title and the range it searched
    name: str = "pair"  # the saved files' stem: the left file's, else "pair"
    confidence: np.ndarray | None = None
    consistent: np.ndarray | None = None
    inputs: tuple[Path, ...] = ()  # the files read: save() never overwrites them
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)  # precision, scale, tile

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        if dtype is None and not copy:
            return self.disparity
        return np.array(self.disparity, dtype=dtype, copy=True)

    @property
    def shape(self) -> tuple[int, int]:
        return self.disparity.shape  # type: ignore[return-value]

    @property
    def max_disparity(self) -> int:
        """The range searched, in pixels."""
        return self.method.max_disparity

    def _prediction(self) -> Prediction:
        return Prediction(self.disparity, self.valid, self.confidence, self.consistent,
                          self.seconds)

    def _scale_max(self) -> float:
        return self.method.max_disparity * SCALE_SHARE

    def score(self, gt: object, *, gt_format: str = "auto", gt_scale: float = 1.0) -> Scores:
        """EPE, D1 and bad-1/2/3 against ``gt``: a ground-truth file (PFM, KITTI 16-bit PNG,
        .npy, Middlebury 8-bit with ``gt_scale``), an (H, W) array of disparities (0, negative
        or not finite: no ground truth) or (disparity, valid). As ``stereo predict --gt``
        scores it."""
        target, truth_valid = ground_truth(gt, self.shape, gt_format, gt_scale)
        return Scores.of(self.disparity, self.valid, target, truth_valid)

    def _kept(self, min_confidence: float | None) -> np.ndarray:
        if min_confidence is None:
            return self.valid
        CONFIDENCE_LEVEL.check(min_confidence, "min_confidence")
        if self.confidence is None and self.consistent is None:
            raise ConfigError(f"{min_confidence}: {self.method.title} gave no confidence map "
                              "(PSMNet does; or predict with lr_check=True)",
                              parameter="min_confidence")
        return self._prediction().kept(min_confidence)

    def depth(self, calibration: object, *, min_confidence: float | None = None) -> np.ndarray:
        """(H, W) float32 depth in metres, f B / (d + doffs), 0 where there is no disparity (or,
        with ``min_confidence``, where the method is less sure). ``calibration``: a KITTI or
        Middlebury calibration file, a Calibration, or (focal_px, baseline_m)."""
        calibration = as_calibration(calibration)
        kept = self._kept(min_confidence)
        return np.where(kept, calibration.depth(self.disparity), 0).astype(np.float32)

    def point_cloud(self, calibration: object, *, min_confidence: float | None = None,
                    max_depth: float = 80.0) -> PointCloud:
        """The pixels with a depth below ``max_depth`` metres, back-projected through the
        calibration's pinhole camera (centred principal point), coloured by the left view."""
        from cnnlab.stereo.inference.visualize import point_cloud

        calibration = as_calibration(calibration)
        depth = self.depth(calibration, min_confidence=min_confidence)
        return PointCloud(*point_cloud(depth, self.left, calibration.focal, max_depth=max_depth))

    def _how(self) -> str:
        """The settings it ran with, in words: "bf16, scale 0.667, tiles 160x208"."""
        parts = [self.settings.get("precision")]
        if self.settings.get("scale", 1.0) != 1.0:
            parts.append(f"scale {self.settings['scale']:.3g}")
        if self.settings.get("tile"):
            parts.append(f"tiles {self.settings['tile']}")
        return ", ".join(p for p in parts if p)

    def _title(self) -> str:
        how = self._how()
        return f"{self.name}: {self.method.title}" + (f" ({how})" if how else "")

    def show(self, gt: object = None, *, confidence: bool = False, gt_format: str = "auto",
             gt_scale: float = 1.0):
        """A Picture: the left view and the disparity in KITTI's colours with a colour bar in
        pixels; with ``gt`` its error map too, and with ``confidence`` the confidence map."""
        from cnnlab.engine.plotting import Picture
        from cnnlab.stereo.inference.visualize import colorize_error, overview_figure

        error_image = None
        if gt is not None:
            target, truth_valid = ground_truth(gt, self.shape, gt_format, gt_scale)
            filled = self._filled()
            error_image = colorize_error(filled, target, truth_valid)
        shown_confidence = self.confidence if confidence else None
        if confidence and shown_confidence is None:
            raise ConfigError(f": {self.method.title} gave no confidence map",
                              parameter="confidence")
        figure = overview_figure(self.left, np.where(self.valid, self.disparity, 0),
                                 self._scale_max(), error_image, self._title(),
                                 shown_confidence)
        return Picture(figure, self._title())

    def _filled(self) -> np.ndarray:
        from cnnlab.stereo.evaluation.metrics import fill_holes_background

        return (self.disparity if self.valid.all()
                else fill_holes_background(self.disparity, self.valid))

    def _repr_png_(self) -> bytes:
        from cnnlab.engine.plotting import Picture
        from cnnlab.stereo.inference.visualize import overview_figure

        figure = overview_figure(None, np.where(self.valid, self.disparity, 0),
                                 self._scale_max(), title=self._title(), width=7.0)
        return Picture(figure, self._title()).png()

    def save(self, folder: str | os.PathLike, *, gt: object = None, calibration: object = None,
             filter: bool = False, min_confidence: float = MIN_CONFIDENCE,
             gt_format: str = "auto", gt_scale: float = 1.0) -> dict[str, Path]:
        """Write the files ``stereo predict`` writes for one pair into ``folder`` (atomically):
        the disparity as KITTI 16-bit PNG and PFM, its colours, an overview, the confidence
        and left-right maps where computed; with ``gt`` the error map, with ``calibration``
        the depth (PFM) and a point cloud (PLY), only the pixels ``filter`` keeps. Files
        named like an input are refused. Returns the paths written, by kind."""
        folder = check_writable_folder(Path(folder).expanduser(), "folder")
        files = [*self.inputs] + ([Path(gt)] if isinstance(gt, (str, os.PathLike)) else [])
        check_spares_inputs(folder, [self.name], files, "folder")
        truth = ground_truth(gt, self.shape, gt_format, gt_scale) if gt is not None else None
        calib = as_calibration(calibration) if calibration is not None else None
        if filter:
            self._kept(min_confidence)
        left_path = self.inputs[0] if self.inputs else Path(self.name)
        inputs = PairInputs(left_path, self.left, self.right, list(self.notes), calib, truth,
                            self.name)
        written = write_prediction(self.method, self._prediction(), inputs, folder, filter,
                                   min_confidence)
        return {kind: Path(path) for kind, path in written["outputs"].items()}

    def __repr__(self) -> str:
        height, width = self.shape
        produced = self.disparity[self.valid]
        span = (f"{produced.min():.1f} to {produced.max():.1f} px" if produced.size
                else "no disparity")
        dense = f", {100 * self.valid.mean():.1f}% dense" if not self.valid.all() else ""
        extra = [f"{len(self.warnings)} warning(s)"] * bool(self.warnings)
        how = self._how()
        return (f"Disparity({self.name}: {width}x{height}, {span}{dense}; {self.method.title}"
                + (f" in {how}" if how else "") + f", {self.seconds:.1f} s"
                + "".join(f"; {e}" for e in extra) + ")")


@dataclass(eq=False, repr=False)
class FolderPrediction:
    """Many pairs' outputs: a row per pair predicted (its size, time, range, ground-truth
    figures, files), the pairs that failed and why, and the KITTI submission where written."""

    rows: list[dict]
    failures: list[tuple[str, str]]  # (pair, error)
    total: int  # pairs given
    out: Path | None = None
    submission: Path | None = None
    archive: Path | None = None
    archive_notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        return self.rows[index]

    @property
    def ok(self) -> bool:
        return not self.failures

    def _scored(self) -> list[dict]:
        return [row for row in self.rows if "metrics" in row]

    def to_dict(self) -> dict:
        return {"rows": self.rows, "failures": [list(f) for f in self.failures],
                "total": self.total, "out": str(self.out) if self.out else None,
                "submission": str(self.submission) if self.submission else None,
                "archive": str(self.archive) if self.archive else None,
                "archive_notes": self.archive_notes}

    def _cells(self, row: dict) -> list[str]:
        low_high = row.get("disparity_range")
        metrics = row.get("metrics")
        size = f"{row['size'][1]}x{row['size'][0]}" if "size" in row else ""
        return [row.get("name", ""), size, f"{row['seconds']:.1f}",
                f"{low_high[0]:.1f} to {low_high[1]:.1f}" if low_high else "",
                f"{metrics['epe']:.3f}" if metrics else "",
                f"{metrics['d1']:.2f}" if metrics else ""]

    def __repr__(self) -> str:
        where = (f"KITTI submission {self.archive}" if self.archive
                 else f"outputs in {self.out}" if self.out else "")
        scored = self._scored()
        mean = (f"; mean EPE {np.mean([r['metrics']['epe'] for r in scored]):.3f} px over "
                f"{len(scored)} pair(s) with ground truth" if scored else "")
        lines = [f"FolderPrediction({len(self.rows)} of {self.total} pairs, {where}"
                 f"{mean}; {len(self.failures)} failed)"]
        for row in self.rows[:SHOWN_ROWS]:
            name, size, seconds, span, epe, d1 = self._cells(row)
            lines.append(f"  {name}: {size}, {seconds} s" + (f", {span} px" if span else "")
                         + (f", EPE {epe} px, D1 {d1}%" if epe else ""))
        if len(self.rows) > SHOWN_ROWS:
            lines.append(f"  ... and {len(self.rows) - SHOWN_ROWS} more")
        lines += [f"  failed: {name}: {error}" for name, error in self.failures]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = [self._cells(row) for row in self.rows]
        rows += [[name, "failed", "", error, "", ""] for name, error in self.failures]
        summary = html.escape(repr(self).splitlines()[0])
        return (f"<p>{summary}</p>" + _table_html(
            ["pair", "size", "seconds", "disparity (px)", "EPE (px)", "D1 (%)"], rows))


@dataclass(eq=False, repr=False)
class Evaluation:
    """EPE, D1 and bad-x of each method on each dataset (``results``, keyed "dataset/method",
    as ``stereo eval`` computes and writes them), under a published ``protocol`` where one
    was asked for."""

    results: dict[str, dict]
    card: ModelCard | None = None
    protocol: Any = None  # stereo.protocols.Protocol
    precision: str | None = None
    split: str = "all"
    scale: float = 1.0
    runtime: str = "torch"

    def __getitem__(self, key: str) -> dict:
        return self.results[key]

    def _first(self) -> dict:
        return next(iter(self.results.values()))["aggregate"].get("all", {})

    @property
    def epe(self) -> float:
        """The first result's EPE (px) on all pixels with ground truth."""
        return self._first()["epe"]

    @property
    def d1(self) -> float:
        """The first result's D1 (%) on all pixels with ground truth."""
        return self._first()["d1"]

    def table(self) -> str:
        """The table ``stereo eval`` prints."""
        from cnnlab.stereo.evaluation.evaluate import format_table
        from cnnlab.stereo.evaluation.protocols import format_protocol_table

        if self.protocol is not None:
            return format_protocol_table(self.protocol, {key.split("/", 1)[1]: result
                                                         for key, result in self.results.items()},
                                         self.card.name if self.card else None)
        return format_table(self.results)

    def to_dict(self) -> dict:
        """What ``stereo eval --json`` writes."""
        has_model = self.card is not None
        return {"results": self.results, "card": self.card.to_dict() if has_model else None,
                "precision": self.precision if has_model else None,
                "runtime": self.runtime if has_model else None,
                "scale": self.scale, "split": self.split,
                "protocol": self.protocol.definition() if self.protocol else None}

    def save(self, path: str | os.PathLike) -> Path:
        """The results as JSON (atomically)."""
        return atomic_write_json(check_json_file(path), self.to_dict())

    def __repr__(self) -> str:
        return self.table()

    def _repr_html_(self) -> str:
        rows = []
        for key, result in self.results.items():
            dataset, method = key.split("/", 1)
            for region, figures in result["aggregate"].items():
                rows.append([dataset, method, region, result["images"], f"{figures['pixels']:,}",
                             f"{figures['epe']:.3f}", f"{figures['d1']:.2f}",
                             f"{figures['bad1']:.2f}", f"{figures['bad2']:.2f}",
                             f"{figures['bad3']:.2f}", f"{100 * result['density']:.1f}"])
        title = (f"<p>{html.escape(self.protocol.name)}: {html.escape(self.protocol.summary)}"
                 "</p>" if self.protocol else "")
        return title + _table_html(["dataset", "method", "region", "pairs", "pixels", "EPE (px)",
                                    "D1 (%)", "bad-1 (%)", "bad-2 (%)", "bad-3 (%)",
                                    "density (%)"], rows)


@dataclass(eq=False, repr=False)
class Report:
    """Where each method fails: errors by region (occluded, low texture, border, near/far) on
    each dataset, findings worded from the numbers, the worst pairs; shows itself as the
    report's HTML in a notebook, and ``save`` writes the ``stereo report`` files."""

    analysis: dict
    card: ModelCard | None = None
    precision: str | None = None
    files: list[Path] = field(default_factory=list)  # what ``report(out=...)`` wrote

    def findings(self, dataset: str | None = None) -> list[str]:
        """Sentences about ``dataset`` (default: the first analysed)."""
        from cnnlab.stereo.evaluation.report import findings

        return findings(self.analysis, dataset or next(iter(self.analysis["datasets"])))

    def save(self, path: str | os.PathLike, format: str = "html") -> list[Path]:
        """``path`` as an HTML file (pictures inlined) or Markdown with its PNGs in
        ``<stem>_files/``, the numbers in ``<stem>.json``; returns the files written."""
        from cnnlab.stereo.evaluation.report import report_path, write_report

        out = report_path(Path(path), format)
        check_writable_folder(out.parent, "path")
        return write_report(self.analysis, out, format, card=self.card)

    def __repr__(self) -> str:
        lines = []
        for dataset, result in self.analysis["datasets"].items():
            figures = ", ".join(
                f"{method} EPE {scores['regions']['all']['epe']:.3f} px, D1 "
                f"{scores['regions']['all']['d1']:.2f}%"
                for method, scores in result["methods"].items() if "all" in scores["regions"])
            lines.append(f"{dataset} ({result['pairs']} pairs): {figures}")
            lines += [f"  - {line}" for line in self.findings(dataset)]
        return "Report(" + ", ".join(self.analysis["methods"]) + ")\n" + "\n".join(lines)

    def _repr_html_(self) -> str:
        from cnnlab.stereo.evaluation.report import report_html

        return report_html(self.analysis, card=self.card)

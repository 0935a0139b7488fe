"""The stereo lab's public calls: ``load`` a model (registered weights, a checkpoint or run
directory, an exported graph, or OpenCV's SGBM), ``StereoModel.predict`` one pair, and
``predict_folder``, ``evaluate`` and ``report`` for many. What ``cnnlab stereo`` does, with the
same defaults (bf16 where the device computes it natively, freed memory kept, tiles when a
pair would not fit) and results that display themselves. Errors name the argument.

The command line calls these same functions: a ``ModelSpec`` (``load``'s arguments, every
option rule checked, nothing read yet) lets a command refuse a bad combination, then read and
check its data, and only then load the model."""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from cnnlab.engine.atomic import check_spares_inputs, check_writable_file
from cnnlab.engine.card import ModelCard
from cnnlab.engine.options import (
    Condition,
    effective_when,
    needs,
    not_with,
    refuse_ignored,
    when,
)
from cnnlab.engine.rules import checked
from cnnlab.errors import MENTION, ConfigError, shown_path
from cnnlab.stereo.choices import (
    BORDER,
    CONFIDENCE_LEVEL,
    CONFIDENCE_RADIUS,
    DATASETS,
    GT_SCALE,
    MAX_MEMORY,
    MIN_CONFIDENCE,
    MIN_DEPTH,
    PAIR_COUNT,
    PRECISIONS,
    PREDICT_OUT,
    REPORT_BORDER,
    RUNTIMES,
    SCALE,
    SGBM_RANGE,
    SIZE,
    SYNTHETIC_COUNT,
    SYNTHETIC_SIZE,
    check_max_disparity,
)
from cnnlab.stereo.data.datasets import StereoDataset
from cnnlab.stereo.inference.budget import tiles_for
from cnnlab.stereo.inference.methods import Method, psmnet_method, sgbm_method
from cnnlab.stereo.inference.predict import (
    pair_notes,
    pair_warnings,
    predict_views,
    saturation,
)
from cnnlab.stereo.inference.predict import saturation_warning as _saturation_warning
from cnnlab.stereo.inference.runtime import runtime_precision
from cnnlab.stereo.inference.sgbm import check_range
from cnnlab.stereo.inference.views import a_kind, as_views
from cnnlab.stereo.results import Disparity, Evaluation, FolderPrediction, Report

SGBM = "sgbm"
Tile = str | tuple[int, int]
CPU = torch.device("cpu")
Log = Callable[[str], None]


def check_scale(scale: object) -> float:
    SCALE.check(scale, "scale")
    return float(scale)  # type: ignore[arg-type]


def check_tile(tile: object) -> Tile:
    if tile in ("auto", "off"):
        return tile  # type: ignore[return-value]
    if (isinstance(tile, (tuple, list)) and len(tile) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in tile)):
        return int(tile[0]), int(tile[1])
    raise ConfigError(f"{tile!r}: expected 'auto', 'off' or (height, width) in pixels",
                      parameter="tile")


def check_max_memory(max_memory: object) -> float | None:
    MAX_MEMORY.check(max_memory, "max_memory")
    return None if max_memory is None else float(max_memory)  # type: ignore[arg-type]


def _refuse_for_sgbm(**given: object) -> None:
    """SGBM (OpenCV's matcher) takes none of PSMNet's settings: one given is refused."""
    for name, value in given.items():
        if value is not None:
            raise ConfigError(": not used by `model` sgbm (OpenCV's SGBM on the full-size pair, "
                              "on the CPU)", parameter=name)


def _refuse_sgbm_pixel_checks(lr_check: bool, filter: bool = False) -> None:
    """SGBM checks its own pixels, and rates none."""
    if lr_check or filter:
        raise ConfigError(": SGBM already leaves out the pixels that fail its own left-right "
                          "check (1 px), and has no confidence map",
                          parameter="lr_check" if lr_check else "filter")


def _refuse_preview_of_exported(scale: float) -> None:
    if scale != 1:
        raise ConfigError(": an exported graph searches the fixed range it was exported with; "
                          "previews need `runtime` torch", parameter="scale")


def _with_int8_stage(network: Any, card: ModelCard, log: Log | None = None) -> None:
    """Attach PSMNet's int8 stage to ``network`` (calibrated once per model and cached)."""
    from cnnlab.stereo.inference.int8 import attach_int8_stage

    attach_int8_stage(network, card.preprocess, log)


def _plain(log: Log | None) -> Log | None:
    """``log`` for notes, which name parameters in backticks as errors do: a ``note`` function
    a caller gives gets them so (the command line words them as its flags), ``log`` the plain
    names."""
    return None if log is None else (lambda line: log(MENTION.sub(r"\1", line)))


def _registered(name_or_path: object) -> bool:
    from cnnlab.stereo.weights.registry import STEREO_WEIGHTS

    return isinstance(name_or_path, str) and name_or_path in STEREO_WEIGHTS


_FOUND_BY_NAME = ("only for registered weights by name; `name_or_path` names a file or folder, "
                  "so it changes nothing")
# when ModelSpec's conditional settings change anything
_SPEC_RULES: dict[str, Condition | list[Condition]] = {
    "weights_root": when(lambda v: _registered(v["name_or_path"]), _FOUND_BY_NAME),
    "download": when(lambda v: _registered(v["name_or_path"]), _FOUND_BY_NAME),
    "max_memory": when(lambda v: not isinstance(v["tile"], (tuple, list)),
                       "only for `tile` auto or off (the budget they decide by); fixed tiles "
                       "are used whatever the memory"),
}


@dataclass
class ModelSpec:
    """What ``load`` loads, and how: its arguments, every option rule checked when the spec is
    made (nothing is read yet), so that a bad combination is refused before any data is. See
    ``load`` for each argument; ``load()`` loads the model, and with ``log`` logs its card."""

    name_or_path: str | os.PathLike
    weights_root: str | os.PathLike | None = None
    download: bool = False
    device: str | torch.device = "auto"
    precision: str = "auto"
    scale: float = 1.0
    tile: Tile = "auto"
    max_memory: float | None = None
    max_disparity: int | None = None
    align_corners: bool | None = None
    runtime: str | None = None  # None: an .onnx file's is onnxruntime, anything else's torch
    model: object = None
    log: Log | None = None
    note: Log | None = None  # warnings about the model (default: Python's warnings)

    def __post_init__(self) -> None:
        if self.is_sgbm:
            _refuse_for_sgbm(weights_root=self.weights_root, max_memory=self.max_memory,
                             runtime=None if self.runtime in (None, "torch") else self.runtime,
                             align_corners=self.align_corners, download=self.download or None,
                             precision=None if self.precision == "auto" else self.precision,
                             scale=None if self.scale == 1 else self.scale,
                             tile=None if self.tile == "auto" else self.tile,
                             device=None if str(self.device) in ("auto", "cpu") else self.device)
            self.max_disparity = check_max_disparity(self.max_disparity, sgbm=True)
            return
        if not isinstance(self.name_or_path, (str, os.PathLike)):
            raise ConfigError(f": {a_kind(self.name_or_path)}; give registered weights (e.g. "
                              "'psmnet-kitti2015'), a checkpoint or run directory, or 'sgbm'",
                              parameter="name_or_path")
        refuse_ignored(vars(self), _SPEC_RULES)
        self.scale, self.tile = check_scale(self.scale), check_tile(self.tile)
        self.max_memory = check_max_memory(self.max_memory)
        self.max_disparity = check_max_disparity(self.max_disparity)
        self.runtime = self.runtime or ("onnxruntime" if self.exported else "torch")
        if self.runtime not in RUNTIMES:
            raise ConfigError(f"{self.runtime!r}: choose from {', '.join(RUNTIMES)}",
                              parameter="runtime")
        if self.runtime != "torch":
            self._check_exported_options()
        if self.exported and self.runtime == "torch":
            raise ConfigError(f"{self.name_or_path}: an exported graph; run it with `runtime` "
                              "onnxruntime or `runtime` openvino", parameter="name_or_path")
        if not self.exported and self.runtime != "torch":
            raise ConfigError(f"{self.runtime}: give the exported model as `name_or_path` "
                              "FILE.onnx (write one with: cnnlab stereo export)",
                              parameter="runtime")
        if self.precision not in PRECISIONS:
            runtime_precision(self.precision, self.runtime, CPU)  # its one-line error

    def _check_exported_options(self) -> None:
        """What an exported graph cannot do: run on a GPU, change its range or convention,
        tile, scale, or compute in anything but fp32."""
        if str(self.device) not in ("auto", "cpu"):
            raise ConfigError(f"{self.device}: `runtime` {self.runtime} runs on the CPU here; "
                              "use `runtime` torch for a GPU", parameter="device")
        if self.max_disparity is not None:
            raise ConfigError(": an exported graph searches the range it was exported with; use "
                              "`runtime` torch to change it", parameter="max_disparity")
        if self.align_corners is not None:
            raise ConfigError(": an exported graph has its convention built in; export again to "
                              "change it", parameter="align_corners")
        if isinstance(self.tile, tuple):
            raise ConfigError(f"{self.tile[0]}x{self.tile[1]}: an exported graph runs whole "
                              "pairs; use `runtime` torch to tile", parameter="tile")
        _refuse_preview_of_exported(self.scale)
        runtime_precision(self.precision, str(self.runtime), CPU)

    @property
    def is_sgbm(self) -> bool:
        return isinstance(self.name_or_path, str) and self.name_or_path.lower() == SGBM

    @property
    def exported(self) -> bool:
        return Path(self.name_or_path).suffix.lower() == ".onnx"

    def load(self) -> StereoModel:
        """The model, loaded (and its card logged to ``log``)."""
        from cnnlab.engine.device import select_device
        from cnnlab.engine.memory import keep_freed_memory

        if self.is_sgbm:
            return StereoModel.sgbm(self.max_disparity or SGBM_RANGE)
        if self.exported:
            from cnnlab.stereo.inference.runtime import ExportedStereoModel

            path = Path(self.name_or_path).expanduser()
            if not path.is_file():
                raise ConfigError(f"{shown_path(path)}: no such file", parameter="name_or_path")
            network = ExportedStereoModel(path.resolve(), str(self.runtime))
            card, device = network.card, network.device
        else:
            from cnnlab.stereo.weights.registry import load_model

            device = select_device(self.device) if isinstance(self.device, str) else self.device
            runtime_precision(self.precision, "torch", device)  # before the weights load
            keep_freed_memory()
            network, card = load_model(self.name_or_path, device, self.weights_root,
                                       self.download, log=self.log, model=self.model,
                                       overrides={"max_disparity": self.max_disparity,
                                                  "align_corners": self.align_corners})
        precision = runtime_precision(self.precision, str(self.runtime), device)
        if precision == "int8":
            _with_int8_stage(network, card, self.log)
        loaded = StereoModel(network, card, precision, device, self.scale, self.tile,
                             self.max_memory, str(self.runtime))
        for line in loaded.summary() if self.log else ():
            self.log(line)  # type: ignore[misc]
        if self.exported and network.size_note:  # said once, when the file is loaded
            line = f"{network.path}: {network.size_note}"
            if self.note is not None:
                self.note(f"warning: {line}")
            else:
                import warnings

                warnings.warn(line, stacklevel=3)
        return loaded


@dataclass(eq=False, repr=False)
class StereoModel:
    """A stereo method ready to run on pairs: PSMNet (``network``, its ``card``) in a
    ``precision`` on a ``device``, at a ``scale``, on tiles when a pair would not fit in
    ``max_memory`` MB; or OpenCV's SGBM (``network`` None) searching ``sgbm_range`` px. Make
    one with ``cnnlab.stereo.load``; ``predict`` runs it on a pair."""

    network: Any  # a PSMNet, an ExportedStereoModel, or None for SGBM
    card: ModelCard | None = None
    precision: str | None = "fp32"  # resolved (None for SGBM)
    device: torch.device = CPU
    scale: float = 1.0
    tile: Tile = "auto"
    max_memory: float | None = None
    runtime: str = "torch"
    sgbm_range: int = SGBM_RANGE

    @classmethod
    def sgbm(cls, max_disparity: int = SGBM_RANGE) -> StereoModel:
        return cls(None, precision=None, sgbm_range=max_disparity)

    @property
    def is_sgbm(self) -> bool:
        return self.network is None

    @property
    def name(self) -> str:
        if self.is_sgbm:
            return SGBM
        assert self.card is not None
        if self.card.name:
            return self.card.name
        file = self.card.source.get("file")
        return Path(file).stem if file else self.card.architecture

    @property
    def max_disparity(self) -> int:
        """The range searched, in full-resolution pixels."""
        if self.is_sgbm:
            return self.sgbm_range
        assert self.card is not None
        return int(self.card.kwargs["max_disparity"])

    def method(self, tile: tuple[int, int] | None = None, confidence: bool = True) -> Method:
        """The ``Method`` evaluation, reports and predict run (PSMNet on ``tile``s, rating
        its pixels with ``confidence``)."""
        if self.is_sgbm:
            return sgbm_method(self.sgbm_range)
        return psmnet_method(self.network, self.card, self.precision or "fp32", self.scale,
                             CONFIDENCE_RADIUS if confidence else None, tile)

    def tiles_for(self, sizes: list[tuple[int, int]]) -> list[tuple[int, int] | None]:
        """Each (height, width) pair's tile (None: whole), decided before any runs; SGBM's
        range is checked against each width."""
        if self.is_sgbm:
            for _, width in sizes:
                check_range(self.sgbm_range, width)
            return [None] * len(sizes)
        if hasattr(self.network, "padded_size"):  # an exported graph: its sizes, checked now
            for height, width in sizes:
                self.network.padded_size(height, width)
        return tiles_for(sizes, self.max_disparity, self.precision or "fp32", self.device,
                         self.scale, self.tile, self.max_memory, self.runtime == "torch")

    def _with(self, precision: str | None = None, scale: float | None = None,
              tile: Tile | None = None, max_memory: float | None = None) -> StereoModel:
        """This model with some settings changed (validated), for one call."""
        changes: dict[str, Any] = {}
        if self.is_sgbm:
            _refuse_for_sgbm(precision=precision, scale=scale, tile=tile,
                             max_memory=max_memory)
            return self
        if precision is not None:
            changes["precision"] = runtime_precision(precision, self.runtime, self.device)
            if changes["precision"] == "int8":
                _with_int8_stage(self.network, self.card)
        if scale is not None:
            changes["scale"] = check_scale(scale)
            if self.runtime != "torch":
                _refuse_preview_of_exported(changes["scale"])
        if tile is not None:
            changes["tile"] = check_tile(tile)
        if max_memory is not None:
            changes["max_memory"] = check_max_memory(max_memory)
        return replace(self, **changes) if changes else self

    def predict(self, left: object, right: object, *, value_range: object = None,
                lr_check: bool = False, precision: str | None = None,
                scale: float | None = None, tile: Tile | None = None,
                max_memory: float | None = None) -> Disparity:
        """The disparity of one rectified pair: ``left`` and ``right`` as file paths, PIL images
        or (H, W, 3) uint8 arrays ((H, W) grey ones are replicated to RGB, with a note);
        arrays of other number types need ``value_range``, the range their values are in
        (e.g. (0, 1) for floats in [0, 1]). ``lr_check`` also runs the mirrored pair and marks
        the pixels whose left and right disparities disagree (twice the time). ``precision``,
        ``scale``, ``tile`` and ``max_memory`` override the model's settings for this call."""
        import warnings

        model = self._with(precision, scale, tile, max_memory)
        if model.is_sgbm:
            _refuse_sgbm_pixel_checks(lr_check)
        left_view, right_view = as_views(left, right, value_range)
        names = (left_view.path or "left", right_view.path or "right")
        notes = pair_notes(left_view.image, right_view.image, *names)
        wrong = pair_warnings(left_view.image, right_view.image, *names)
        for line in notes + wrong:
            warnings.warn(line, stacklevel=2)
        tile_used = model.tiles_for([left_view.image.shape[:2]])[0]
        method = model.method(tile_used)
        prediction = predict_views(method, left_view.image, right_view.image, lr_check)
        found = wrong + [w for w in [_saturation_warning(saturation(
            prediction, method.max_disparity), method.max_disparity)] if w]
        inputs = tuple(v.path for v in (left_view, right_view) if v.path is not None)
        settings = ({"precision": model.precision, "scale": model.scale,
                     "tile": f"{tile_used[0]}x{tile_used[1]}" if tile_used else None}
                    if not model.is_sgbm else {})
        return Disparity(prediction.disparity, prediction.valid, left_view.image,
                         right_view.image, method,
                         left_view.path.stem if left_view.path else "pair",
                         prediction.confidence, prediction.consistent, inputs, notes, found,
                         prediction.seconds, settings)

    def summary(self) -> list[str]:
        """What the ``stereo`` commands print of a loaded model: where its weights come from,
        then its card (nothing for SGBM)."""
        if self.is_sgbm:
            return []
        assert self.card is not None
        name = self.card.name or "checkpoint"
        if self.runtime != "torch":
            graph = self.network
            low, high = graph.min_size, graph.max_size
            heading = (f"Weights: {name} exported ({graph.path}, run by {self.runtime}, sizes "
                       f"{low[0]}x{low[1]} to {high[0]}x{high[1]})")
        else:
            source = self.card.source
            verified = f", verified by {source['verified']}" if source.get("verified") else ""
            heading = f"Weights: {name} ({source['file']}{verified})"
        return [heading, *(f"  {line}" for line in self.card.summary())]

    def _facts(self) -> list[tuple[str, str]]:
        if self.is_sgbm:
            return [("method", "SGBM (OpenCV), on the CPU"),
                    ("range", f"{self.max_disparity} px")]
        assert self.card is not None
        facts = [("architecture", self._architecture()), ("range", f"{self.max_disparity} px"),
                 ("precision", f"{self.precision}"), ("device", str(self.device)),
                 ("runtime", self.runtime), ("scale", f"{self.scale:g}"),
                 ("tile", self.tile if isinstance(self.tile, str)
                  else f"{self.tile[0]}x{self.tile[1]}"),
                 ("max_memory", "80% of the available" if self.max_memory is None
                  else f"{self.max_memory:g} MB")]
        if self.card.source.get("file"):
            facts.append(("file", str(self.card.source["file"])))
        return facts

    def __repr__(self) -> str:
        if self.is_sgbm:
            return f"StereoModel(sgbm: OpenCV SGBM, range {self.max_disparity} px, cpu)"
        extra = "".join(f", {k} {v}" for k, v in (("scale", f"{self.scale:g}"),
                                                   ("tile", self.tile))
                        if v not in ("1", "auto"))
        runtime = f", run by {self.runtime}" if self.runtime != "torch" else ""
        return (f"StereoModel({self.name}: {self._architecture()}, range {self.max_disparity} "
                f"px, {self.precision} on {self.device}{runtime}{extra})")

    def _architecture(self) -> str:
        assert self.card is not None
        variant = self.card.kwargs.get("variant")
        return f"{self.card.architecture} {variant}" if variant else self.card.architecture

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                       f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
                       for k, v in self._facts())
        card = ""
        if self.card is not None:
            items = "".join(f"<li>{html.escape(line)}</li>" for line in self.card.summary())
            card = f"<details><summary>model card</summary><ul>{items}</ul></details>"
        return (f"<p><strong>StereoModel {html.escape(self.name)}</strong></p>"
                f"<table>{rows}</table>{card}")


def load(name_or_path: str | os.PathLike, *, weights_root: str | os.PathLike | None = None,
         download: bool = False, device: str | torch.device = "auto", precision: str = "auto",
         scale: float = 1.0, tile: Tile = "auto", max_memory: float | None = None,
         max_disparity: int | None = None, align_corners: bool | None = None,
         runtime: str | None = None, model: object = None, log: Log | None = None
         ) -> StereoModel:
    """A stereo model to run on pairs. ``name_or_path``: registered weights ("psmnet-kitti2015";
    found in ``weights_root``, then $CNNLAB_WEIGHTS, then the user cache; fetched from their
    official source with ``download``), a run directory or checkpoint (.safetensors, an
    official .tar), an exported .onnx file (run by ``runtime`` "onnxruntime" or "openvino"),
    or "sgbm" (OpenCV's classical matcher).

    PSMNet runs on ``device`` in ``precision`` ("auto": bf16 where the device computes it
    natively, else fp32; "int8": the 3-D stage quantized, on a CPU with VNNI, calibrated
    once per model and cached), on the pair scaled by ``scale`` (<= 1: faster, coarser), and on
    tiles when a pair would need more than ``max_memory`` MB (default 80% of what is
    available; ``tile`` "off" refuses such a pair, (H, W) always tiles so). ``max_disparity``
    and ``align_corners`` override the card's. Weights trained with your SPP or hourglass
    need that network as ``model`` (``psmnet(spp=MySPP, hourglass=MyHourglass)``). Like
    ``cnnlab stereo predict``, loading keeps the memory freed by each pair for the next (a
    process-wide allocator setting). ``log`` gets download progress and the model card."""
    return ModelSpec(name_or_path, weights_root=weights_root, download=download, device=device,
                     precision=precision, scale=scale, tile=tile, max_memory=max_memory,
                     max_disparity=max_disparity, align_corners=align_corners, runtime=runtime,
                     model=model, log=log).load()


def _spec(model: StereoModel | ModelSpec | str | os.PathLike) -> StereoModel | ModelSpec:
    """``model`` itself when loaded or specified, else its spec by name or path (``load``'s
    defaults): checked now, loaded by ``_loaded`` once the data is."""
    if isinstance(model, (StereoModel, ModelSpec)):
        return model
    if isinstance(model, (str, os.PathLike)):
        return ModelSpec(model)
    raise ConfigError(f": {a_kind(model)}; give a StereoModel (cnnlab.stereo.load), "
                      "registered weights or a checkpoint path", parameter="model")


def _loaded(model: StereoModel | ModelSpec) -> StereoModel:
    return model if isinstance(model, StereoModel) else model.load()


def _is_sgbm(model: object) -> bool:
    return bool(getattr(model, "is_sgbm", isinstance(model, str) and model.lower() == SGBM))


def _runtime(model: object) -> str:
    """The runtime ``model`` (a StereoModel, a ModelSpec or what ``load`` takes) runs with."""
    runtime = getattr(model, "runtime", None)
    if runtime is None and isinstance(model, (str, os.PathLike)):
        runtime = "onnxruntime" if Path(model).suffix.lower() == ".onnx" else "torch"
    return runtime or "torch"


_SUBMISSION = "which writes the disparity alone (KITTI's server fills holes itself)"
_SGBM_PIXELS = ("SGBM already leaves out the pixels that fail its own left-right check (1 px), "
                "and has no confidence map")
# when each of predict_folder's conditional options changes anything (checked before any file
# is read); the order is the order in which they are refused
_PREDICT_RULES: dict[str, Condition | list[Condition]] = {
    "filter": [not_with("kitti_submission", _SUBMISSION),
               when(lambda v: not _is_sgbm(v["model"]), _SGBM_PIXELS),
               when(lambda v: v["lr_check"] or _runtime(v["model"]) == "torch",
                    "an exported graph gives no confidence map; add `lr_check`, or use "
                    "`runtime` torch"),
               needs("calibration", "gt", "pair_list",
                     why="it leaves pixels out of the depth and point cloud, and out of the "
                         "scored pixels beside the full score")],
    "lr_check": [not_with("kitti_submission", _SUBMISSION),
                 when(lambda v: not _is_sgbm(v["model"]), _SGBM_PIXELS)],
    "gt": not_with("kitti_submission", _SUBMISSION),
    "overview": not_with("kitti_submission", _SUBMISSION),
    "calibration": not_with("kitti_submission", _SUBMISSION),
    "min_depth": [needs("calibration", why="the focal length and baseline it turns into a "
                                           "disparity"),
                  not_with("kitti_submission", _SUBMISSION)],
    "min_confidence": needs("filter", why="the confidence below which `filter` leaves a pixel "
                                          "out"),
    "gt_format": needs("gt", "pair_list", why="how the ground truth is read"),
    "gt_scale": needs("gt", "pair_list", why="how the ground truth is read"),
    "out": not_with("kitti_submission", "the submission's maps go to that folder and its .zip"),
}


@checked(min_depth=MIN_DEPTH, min_confidence=CONFIDENCE_LEVEL, gt_scale=GT_SCALE)
@effective_when(**_PREDICT_RULES)
def predict_folder(model: StereoModel | ModelSpec | str | os.PathLike,
                   left: str | os.PathLike | Sequence[str | os.PathLike] | None,
                   right: str | os.PathLike | Sequence[str | os.PathLike] | None,
                   out: str | os.PathLike | None = None, *,
                   pair_list: str | os.PathLike | None = None, gt: Any = None,
                   gt_format: str | None = None, gt_scale: float | None = None,
                   calibration: object = None, min_depth: float | None = None,
                   lr_check: bool = False, filter: bool = False,
                   min_confidence: float | None = None,
                   kitti_submission: str | os.PathLike | None = None,
                   overview: bool | None = None,
                   log: Log | None = print, note: Log | None = None) -> FolderPrediction:
    """``model`` on many pairs, their files written into ``out`` as ``cnnlab stereo predict``
    writes them (or, with ``kitti_submission`` DIR, DIR/disp_0/NNNNNN_10.png and DIR.zip as
    KITTI's server expects). The pairs: two folders (files of the same name), two glob
    patterns (quoted wildcards pair the files), two lists of files, or ``pair_list``, a text
    file of 'left right [ground truth]' lines. ``gt`` (a folder, pattern or list like the
    views) adds EPE/D1 and an error map, ``calibration`` depth and a point cloud, and
    ``min_depth`` (metres) a note on the range the nearest depth needs; ``overview`` False
    leaves out each pair's overview figure (most of the writing time: a folder then runs at
    the forward pass's rate). Every input is checked before a model named by ``model`` is
    loaded; a pair that fails to read is reported and skipped. ``out`` defaults to
    runs/predict, ``min_confidence`` (``filter``'s threshold) to
    0.5, ``gt_format``/``gt_scale`` to "auto"/1; an option that would change nothing here
    (``filter`` with neither ground truth nor calibration, ``out`` with ``kitti_submission``,
    ...) is refused, as ``_PREDICT_RULES`` says, and no output may overwrite an input.
    Progress goes to ``log`` (None: quiet), notes and warnings to ``note`` (default:
    ``log``)."""
    from cnnlab.stereo.inference.many_pairs import plan_pairs, run_pairs
    from cnnlab.stereo.inference.predict import range_advice
    from cnnlab.stereo.results import as_calibration

    source = _spec(model)
    calib = as_calibration(calibration) if calibration is not None else None
    plan = plan_pairs(left, right, PREDICT_OUT if out is None else out, pair_list=pair_list,
                      gt=gt, gt_format=gt_format or "auto",
                      gt_scale=1.0 if gt_scale is None else gt_scale, calibration=calib,
                      kitti_submission=kitti_submission,
                      inputs=[source.name_or_path] if isinstance(source, ModelSpec) else [])
    if pair_list is not None and not any(truth for *_, truth in plan.pairs):
        # the list has no ground-truth column: what needs one is refused as if none were given
        refuse_ignored({"model": source, "pair_list": None, "gt": gt, "calibration": calib,
                        "filter": filter, "lr_check": lr_check, "gt_format": gt_format,
                        "gt_scale": gt_scale}, _PREDICT_RULES)
    stereo = _loaded(source)
    tiles = stereo.tiles_for(plan.sizes)
    note = note or _plain(log)
    if calib is not None and min_depth is not None and note is not None:
        line, short = range_advice(calib, min_depth, stereo.max_disparity)
        note(f"{'warning' if short else 'note'}: {line}")
    threshold = MIN_CONFIDENCE if min_confidence is None else min_confidence
    result = run_pairs(stereo, plan, lr_check=lr_check, filter_pixels=filter,
                       min_confidence=threshold, tiles=tiles, log=log, note=note,
                       overview=overview is not False)
    if log is not None and result.archive is not None:
        log(f"KITTI submission: {plan.submission}/disp_0 ({len(result)} maps), {result.archive}")
    for line in result.archive_notes if note is not None else ():
        note(f"note: {line}")
    return result


def _dataset_names(values: dict) -> set[str]:
    """The datasets named in ``evaluate``'s or ``report``'s arguments (a protocol counts)."""
    chosen = values.get("dataset", values.get("datasets"))
    items = chosen if isinstance(chosen, (list, tuple)) else [chosen]
    names = {item for item in items if isinstance(item, str)}
    if values.get("protocol"):
        names.add("protocol")
    return names


_SYNTHETIC_ONLY = "only for `dataset` synthetic (the scenes it renders)"
# when evaluate's and report's conditional options change anything
_SCORED_RULES: dict[str, Condition | list[Condition]] = {
    "split": when(lambda v: bool(_dataset_names(v) - {"synthetic", "folder"}),
                  "only for the official datasets (kitti2015, kitti2012, sceneflow, middlebury), "
                  "which have published splits; synthetic scenes and a folder are scored whole"),
    "count": when(lambda v: "synthetic" in _dataset_names(v), _SYNTHETIC_ONLY),
    "synthetic_size": when(lambda v: "synthetic" in _dataset_names(v), _SYNTHETIC_ONLY),
    "max_disparity": when(lambda v: (v["compare_sgbm"] or _is_sgbm(v["model"])
                                     or "synthetic" in _dataset_names(v)),
                          "the range SGBM searches and synthetic scenes span; PSMNet searches "
                          "its model's own, so without SGBM or `dataset` synthetic it changes "
                          "nothing"),
    "format": needs("out", why="the format of the report file written"),
}


def _read_files(model: object, folder: dict | None) -> list[Path]:
    """The files ``evaluate`` or ``report`` will read that a user names (the model's, the
    folder dataset's), found before anything runs, so that no output overwrites one."""
    import glob

    files = []
    name = getattr(model, "name_or_path", model)
    if isinstance(name, (str, os.PathLike)) and not _registered(name):
        files.append(Path(name).expanduser())
    for key in ("left", "right", "gt"):
        pattern = (folder or {}).get(key)
        if isinstance(pattern, (str, os.PathLike)):
            files += [Path(f) for f in glob.glob(os.path.expanduser(pattern), recursive=True)]
    if (folder or {}).get("pair_list"):
        files.append(Path(folder["pair_list"]).expanduser())  # type: ignore[index]
    return files


def _dataset_name(dataset: object) -> str:
    return getattr(dataset, "name", type(dataset).__name__)


def _scored(model: StereoModel | ModelSpec | str | os.PathLike, datasets: Sequence[object],
            protocol: Any, data_root: str | os.PathLike | None, split: str,
            count: int | None, synthetic_size: tuple[int, int] | None, compare_sgbm: bool,
            confidence: bool,
            max_disparity: int | None, folder: dict | None
            ) -> tuple[dict[str, StereoDataset], dict[str, Method], StereoModel, int]:
    """The datasets (opened and checked before a model is loaded), the methods that score
    them (the model's, and SGBM beside it with ``compare_sgbm``), the model, and the range
    SGBM searches and synthetic scenes span: ``max_disparity``, else the model's."""
    from cnnlab.stereo.choices import check_folder_options
    from cnnlab.stereo.evaluation.evaluate import finish_sources, open_sources

    if not datasets:
        raise ConfigError(f"is required: a dataset name ({', '.join(DATASETS)}) or a "
                          "StereoDataset", parameter="dataset")
    names = [d for d in datasets if isinstance(d, str)]
    objects = {_dataset_name(d): d for d in datasets if not isinstance(d, str)}
    for thing in objects.values():
        if not isinstance(thing, StereoDataset):
            raise ConfigError(f": {a_kind(thing)}; give a dataset name or a "
                              "StereoDataset", parameter="dataset")
    source = _spec(model)
    check_max_disparity(max_disparity, sgbm=True)
    check_folder_options(names, folder or {})
    root = None if data_root is None else str(Path(data_root).expanduser())
    count = SYNTHETIC_COUNT if count is None else count
    synthetic_size = SYNTHETIC_SIZE if synthetic_size is None else synthetic_size
    sources = open_sources(names, root, split, count, synthetic_size, folder, protocol)
    stereo = _loaded(source)
    searched = max_disparity or stereo.max_disparity
    if stereo.is_sgbm:
        methods = {SGBM: sgbm_method(searched)}
    else:
        methods = {stereo.method().name: stereo.method(confidence=confidence)}
        if compare_sgbm:
            methods[SGBM] = sgbm_method(searched)
    scored = {**sources, **objects}
    return (finish_sources(scored, methods, searched, split, count, synthetic_size), methods,
            stereo, searched)


@checked(count=PAIR_COUNT, synthetic_size=SIZE)
@effective_when(**{k: v for k, v in _SCORED_RULES.items() if k != "format"})
def evaluate(model: StereoModel | ModelSpec | str | os.PathLike, dataset: object = None,
             protocol: str | None = None, *, data_root: str | os.PathLike | None = None,
             split: str | None = None, count: int | None = None,
             synthetic_size: tuple[int, int] | None = None, compare_sgbm: bool = False,
             max_disparity: int | None = None, folder: dict | None = None,
             json: str | os.PathLike | None = None, log: Log | None = print,
             note: Log | None = None) -> Evaluation:
    """EPE, D1 and bad-1/2/3 of ``model`` (a StereoModel, or what ``load`` takes) on
    ``dataset``: a name (kitti2015, kitti2012, middlebury, sceneflow under ``data_root``;
    synthetic: ``count`` scenes of ``synthetic_size``; folder: your pairs, ``folder`` giving
    ``open_folder``'s options), a StereoDataset, or a list of them; or under a published
    ``protocol`` (sceneflow, kitti2015-val, kitti2012-val, middlebury: its dataset, split,
    pixel masks and the published figures beside). ``split``: train, val, test or all
    (default: the protocol's, else all). ``compare_sgbm`` scores SGBM too, as ``stereo eval
    --model both``; SGBM searches ``max_disparity`` px and synthetic scenes span it (default:
    the model's range). ``json`` names a file for the results (checked first, written last).
    Progress goes to ``log`` (None: quiet), notes to ``note`` (default: ``log``)."""
    from cnnlab.stereo.evaluation.evaluate import default_masks, score_sources
    from cnnlab.stereo.evaluation.protocols import get_protocol

    chosen = None
    if protocol is not None:
        chosen = get_protocol(protocol)
        if dataset is not None:
            raise ConfigError(f"{chosen.name} and `dataset`: the protocol names its dataset "
                              f"({chosen.dataset}); give one of them", parameter="protocol")
        dataset = chosen.dataset
    elif dataset is None:
        raise ConfigError("or `protocol` is required", parameter="dataset")
    if json is not None:
        check_spares_inputs([check_writable_file(json, "json")], _read_files(model, folder),
                            "json")
    split = split or (chosen.split if chosen else "all")
    datasets = list(dataset) if isinstance(dataset, (list, tuple)) else [dataset]
    sources, methods, stereo, _ = _scored(model, datasets, chosen, data_root, split, count,
                                          synthetic_size, compare_sgbm, False, max_disparity,
                                          folder)
    note = note or _plain(log)
    if note is not None and chosen is not None and split != chosen.split:
        note(f"note: `split` {split} is not {chosen.name}'s published split ({chosen.split}); "
             "the figures are not comparable with the published ones")
    how = {} if stereo.is_sgbm else {
        stereo.method().name: f" (in {stereo.precision}, scaled by {stereo.scale:.3g}, run by "
                              f"{stereo.runtime})"}
    results = score_sources(sources, methods, chosen.masks if chosen else default_masks, log,
                            how)
    evaluation = Evaluation(results, stereo.card, chosen, stereo.precision, split, stereo.scale,
                            stereo.runtime)
    if json is not None:
        evaluation.save(json)
    return evaluation


@checked(count=PAIR_COUNT, synthetic_size=SIZE, border=BORDER)
@effective_when(**_SCORED_RULES)
def report(model: StereoModel | ModelSpec | str | os.PathLike, datasets: object, *,
           data_root: str | os.PathLike | None = None, split: str | None = None,
           count: int | None = None, synthetic_size: tuple[int, int] | None = None,
           compare_sgbm: bool = True, border: int = REPORT_BORDER,
           max_disparity: int | None = None, folder: dict | None = None,
           out: str | os.PathLike | None = None, format: str | None = None,
           log: Log | None = print) -> Report:
    """Where ``model`` fails, against SGBM (``compare_sgbm``, searching ``max_disparity`` px,
    default the model's range): errors by region (occluded, low texture, ``border`` px from
    the edge, by disparity) on each of ``datasets`` (names under ``data_root``, StereoDatasets,
    or one of them; ``folder`` as for ``evaluate``), findings worded from the numbers, the worst
    pairs, and the sparsification curve of PSMNet's confidence. Shows itself in a notebook;
    ``.save(path)`` writes the ``stereo report`` files, and ``out`` writes them at once in
    ``format`` (the name checked before anything runs; the files in ``files``)."""
    from cnnlab.stereo.evaluation.evaluate import one_at_a_time
    from cnnlab.stereo.evaluation.report import analyse, report_path

    if out is not None:
        format = format or "html"
        out = check_writable_file(report_path(Path(out).expanduser(), format), "out")
        check_spares_inputs([out, out.with_suffix(".json")], _read_files(model, folder), "out")
    chosen = list(datasets) if isinstance(datasets, (list, tuple)) else [datasets]
    sources, methods, stereo, searched = _scored(model, chosen, None, data_root, split or "all",
                                                 count, synthetic_size, compare_sgbm, True,
                                                 max_disparity, folder)
    if log is not None:
        log(f"Analysing {', '.join(methods)} on {', '.join(sources)}"
            + (f" (PSMNet in {stereo.precision})" if stereo.precision else "") + ":")
    streams = {name: one_at_a_time(source) for name, source in sources.items()}
    analysis = analyse(methods, streams, searched, log, border=border)
    result = Report(analysis, stereo.card, stereo.precision)
    if out is not None:
        result.files = result.save(out, format)
    return result

"""PSMNet as an ONNX file with dynamic height and width, checked against PyTorch.

The stacked cost volume lets the exporter keep both sizes symbolic. The smallest size is
256x512: below a quarter-resolution map of 64x128 the SPP pools are clipped to the map, a
branch the graph cannot hold. One file then serves KITTI (384x1248 after padding) and
SceneFlow (544x960), checked against PyTorch at both with the official weights.
"""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.engine.atomic import atomic_write
from cnnlab.engine.card import ModelCard
from cnnlab.errors import ConfigError
from cnnlab.stereo.choices import EXPORT_MAX_SIZE, EXPORT_MIN_SIZE, PSMNET_STRIDE
from cnnlab.stereo.models.blocks import OneChannelConv3d

DEFAULT_MIN_SIZE, DEFAULT_MAX_SIZE = EXPORT_MIN_SIZE, EXPORT_MAX_SIZE


class DisparityOnly(nn.Module):
    """PSMNet whose forward returns the (B, H, W) disparity alone: ONNX outputs are tensors."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return self.network(left, right)["disparity"]


@contextlib.contextmanager
def _unchunked(model: nn.Module) -> Iterator[None]:
    """The model with its one-go regression (the chunked one loops over rows in Python, which
    an exported graph would fix to one height) and plain one-channel convolutions (a graph
    runtime has its own kernels), restored afterwards."""
    chunk, model.row_chunk = model.row_chunk, None
    convs = {m: m.decomposed for m in model.modules() if isinstance(m, OneChannelConv3d)}
    for conv in convs:
        conv.decomposed = False
    try:
        yield
    finally:
        model.row_chunk = chunk
        for conv, decomposed in convs.items():
            conv.decomposed = decomposed


def check_export(out: Path, low: tuple[int, int], high: tuple[int, int]) -> None:
    """Refuse a file name or size range the export cannot take, before any model is loaded."""
    if Path(out).suffix != ".onnx":
        raise ConfigError(f"{out}: the exported file must end in .onnx", parameter="out")
    for name, a, b in (("height", low[0], high[0]), ("width", low[1], high[1])):
        if a % PSMNET_STRIDE or b % PSMNET_STRIDE or a > b:
            raise ConfigError(f"`min_size`/`max_size`: the {name} range {a}-{b} must be "
                              "multiples of 16, the smaller first")
    if low[0] < DEFAULT_MIN_SIZE[0] or low[1] < DEFAULT_MIN_SIZE[1]:
        raise ConfigError(f"{low[0]}x{low[1]}: at least "
                          f"{DEFAULT_MIN_SIZE[0]}x{DEFAULT_MIN_SIZE[1]} (smaller maps clip the "
                          "SPP pools, a branch an exported graph cannot hold)",
                          parameter="min_size")


def export_onnx(model: nn.Module, card: ModelCard, out: Path,
                min_size: tuple[int, int] = DEFAULT_MIN_SIZE,
                max_size: tuple[int, int] = DEFAULT_MAX_SIZE,
                log: Callable[[str], None] | None = None) -> dict:
    """Write ``model`` (a PSMNet in eval mode) to ``out`` as ONNX taking normalised
    (1, 3, H, W) left and right images for any H and W in the range, multiples of 16, and
    returning the (1, H, W) disparity; the model card goes into the file's metadata. Returns
    what was written and how long the export took."""
    try:
        import onnx  # noqa: F401  (torch's exporter needs it, and onnxscript)
        import onnxscript  # noqa: F401
    except ImportError:
        raise ConfigError("export needs the optional 'export' extra: pip install "
                          "'cnnlab[export]' (onnx, onnxscript, onnxruntime)") from None
    check_export(out, min_size, max_size)
    out = Path(out)
    wrapped = DisparityOnly(model).eval()
    rows = torch.export.Dim("rows", min=min_size[0] // 16, max=max_size[0] // 16)
    columns = torch.export.Dim("columns", min=min_size[1] // 16, max=max_size[1] // 16)
    shapes = {"left": {2: 16 * rows, 3: 16 * columns}, "right": {2: 16 * rows, 3: 16 * columns}}
    generator = torch.Generator().manual_seed(0)
    example = tuple(torch.randn(1, 3, *min_size, generator=generator) for _ in range(2))
    if log:
        log(f"Exporting for heights {min_size[0]}-{max_size[0]} and widths "
            f"{min_size[1]}-{max_size[1]} (multiples of 16)...")
    started = time.perf_counter()
    try:
        with torch.no_grad(), warnings.catch_warnings(), _unchunked(model):
            warnings.simplefilter("ignore")  # the exporter's notes on axis names and the like
            program = torch.onnx.export(wrapped, example, dynamo=True, dynamic_shapes=shapes,
                                        input_names=["left", "right"],
                                        output_names=["disparity"], verbose=False)
    except Exception as exc:  # the exporter's own failures: one line, the cause kept
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise ConfigError(f"`min_size`/`max_size` {min_size[0]}x{min_size[1]} to "
                          f"{max_size[0]}x{max_size[1]}: the export failed "
                          f"({type(exc).__name__}: {first})") from None
    seconds = time.perf_counter() - started
    proto = program.model_proto
    for key, value in (("cnnlab_card", json.dumps(card.to_dict())),
                       ("cnnlab_sizes", json.dumps({"min": list(min_size),
                                                    "max": list(max_size)}))):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    atomic_write(out, lambda tmp: tmp.write_bytes(proto.SerializeToString()))
    return {"file": str(out), "export_seconds": round(seconds, 1),
            "min_size": list(min_size), "max_size": list(max_size)}


def check_pairs(card: ModelCard, sizes: list[tuple[int, int]]
                ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A rendered synthetic scene per size, normalised as the card says: inputs with the
    structure of real pairs for the parity check (on noise the cost volume is chaotic, and
    fp32 PyTorch itself moves 1.6e-3 px from fp64)."""
    from cnnlab.stereo.data.preprocess import Normalize
    from cnnlab.stereo.data.synthetic import render_pair, scene_max_disparity

    normalize = Normalize(card.preprocess["mean"], card.preprocess["std"])
    pairs = []
    for seed, size in enumerate(sizes):
        scene = render_pair(*size, scene_max_disparity(card.kwargs["max_disparity"]), seed)
        pairs.append(tuple(normalize(view)[None] for view in (scene.left, scene.right)))
    return pairs


def onnx_parity(path: Path, model: nn.Module, pairs: list[tuple[torch.Tensor, torch.Tensor]]
                ) -> list[dict]:
    """Largest and mean |ONNX Runtime - PyTorch| disparity (px) on each normalised pair."""
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("checking the export needs onnxruntime: pip install "
                          "'cnnlab[export]'") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    wrapped = DisparityOnly(model).eval()
    report = []
    for left, right in pairs:
        with torch.no_grad(), _unchunked(model):  # the path that was exported
            expected = wrapped(left, right)
        got = torch.from_numpy(session.run(None, {"left": left.numpy(),
                                                  "right": right.numpy()})[0])
        difference = (got - expected).abs()
        report.append({"size": list(left.shape[-2:]), "max_px": float(difference.max()),
                       "mean_px": float(difference.mean())})
    return report


def export_model(model: Any, out: str | Path, min_size: tuple[int, int] = DEFAULT_MIN_SIZE,
                 max_size: tuple[int, int] = DEFAULT_MAX_SIZE, check: bool = True,
                 log: Callable[[str], None] | None = None) -> dict:
    """``model`` (a ``cnnlab.stereo.api.ModelSpec``, or registered weights or a checkpoint as
    ``cnnlab.stereo.load`` takes them) written to ``out`` by ``export_onnx``, the file name and
    the size range checked before the model is loaded. With ``check``, ONNX Runtime against
    PyTorch on a synthetic scene at the smallest size and at the middle of the range, as
    ``onnx_parity`` measures it (the rows under "parity")."""
    from cnnlab.engine.atomic import check_spares_inputs, check_writable_file
    from cnnlab.stereo.api import ModelSpec

    spec = model if isinstance(model, ModelSpec) else ModelSpec(model, device="cpu")
    if spec.precision == "int8":  # the graph is fp32; its runtimes choose their precision
        raise ConfigError("int8: an exported graph holds the fp32 network; export without "
                          "`precision` int8 (int8 runs in PyTorch: stereo.load(..., "
                          "precision=\"int8\"))", parameter="precision")
    check_export(Path(out), min_size, max_size)
    out = check_writable_file(out, "out")
    check_spares_inputs([out], [spec.name_or_path], "out")
    loaded = spec.load()
    if loaded.is_sgbm or loaded.runtime != "torch":
        raise ConfigError(f"{spec.name_or_path}: only PSMNet weights export (not SGBM or an "
                          "exported graph)", parameter="name_or_path")
    written = export_onnx(loaded.network, loaded.card, out, min_size, max_size, log)
    if check:
        step = PSMNET_STRIDE  # the middle size, a multiple of it as every exported size
        middle = tuple(step * round((a + b) / (2 * step)) for a, b in zip(min_size, max_size))
        pairs = check_pairs(loaded.card, [min_size, middle])  # type: ignore[list-item]
        written["parity"] = onnx_parity(out, loaded.network, pairs)
    return written

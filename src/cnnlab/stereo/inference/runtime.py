"""Run an exported PSMNet (``cnnlab stereo export``) with ONNX Runtime or OpenVINO.

``ExportedStereoModel`` is called like cnnlab's PSMNet at inference (normalised (B, 3, H, W)
views in, ``{"disparity": (B, H, W)}`` out), so ``inference.disparity_of``, ``stereo predict`` and
``stereo eval`` take it as they take the PyTorch model. The model card and the size range the
graph was exported for come from the file's metadata; a pair is padded with zeros (the mean
colour after normalising) to multiples of 16 as PSMNet pads, and a pair outside the exported
range is refused before anything runs.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.engine.card import ModelCard
from cnnlab.engine.precision import inference_precision
from cnnlab.errors import ConfigError, DataError
from cnnlab.stereo.choices import RUNTIMES


def runtime_precision(name: str, runtime: str, device: torch.device) -> str:
    """``--precision`` resolved for ``runtime``: PyTorch follows ``inference_precision``; the
    exported graph runs in fp32 ('auto' is fp32 there; int8 is PyTorch's quantized stage).
    ONNX Runtime's CPU kernels have no bf16 convolution, and OpenVINO's bf16 mode puts the
    soft-argmin in bf16 too (official KITTI 2015 weights, the 3 shared pairs: EPE 0.376
    instead of 0.350 px), while PyTorch's bf16 keeps it in fp32 and is faster (3.5 s vs
    4.0 s at 384x1248 on 2 cores)."""
    if runtime == "torch":
        return inference_precision(name, device)
    if name == "int8":  # PyTorch's quantized 3-D stage (stereo.inference.int8)
        raise ConfigError(f"int8: `runtime` {runtime} runs the exported graph in fp32 only; "
                          "use `runtime` torch for int8", parameter="precision")
    if name not in ("auto", "fp32"):
        raise ConfigError(f"{name}: `runtime` {runtime} runs the exported graph in "
                          "fp32 only (its bf16 would put the soft-argmin in bf16 too); use "
                          f"`runtime` torch for {name}", parameter="precision")
    return "fp32"


def card_and_sizes(path: Path, meta: dict[str, str]
                   ) -> tuple[ModelCard, tuple[int, int], tuple[int, int]]:
    """The model card and the (min, max) HxW that ``cnnlab stereo export`` stored in the
    file's metadata ``meta``."""
    if "cnnlab_card" not in meta or "cnnlab_sizes" not in meta:
        raise DataError(f"{path}: an ONNX file without cnnlab's model card; write it with "
                        "cnnlab stereo export")
    try:
        card = ModelCard.from_dict(json.loads(meta["cnnlab_card"]), str(path))
        sizes = json.loads(meta["cnnlab_sizes"])
        low, high = (tuple(int(v) for v in sizes[key]) for key in ("min", "max"))
    except (ValueError, TypeError, KeyError):
        raise DataError(f"{path}: cnnlab's metadata in this ONNX file is damaged; export it "
                        "again") from None
    return card, low, high


QUARTER = 4  # PSMNet's SPP pools the 1/4-resolution feature map


def onnx_pool_kernels(path: Path) -> list[tuple[int, int]] | None:
    """The (height, width) kernel of every AveragePool in the ONNX graph at ``path`` (the SPP's
    pools), read from the graph itself; None when the ``onnx`` package is missing or the
    file cannot be parsed (the runtime then names the problem)."""
    try:
        import onnx
    except ImportError:
        return None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # protobuf's own errors for a file that is not ONNX
        return None
    nodes = [*model.graph.node, *(n for f in model.functions for n in f.node)]
    kernels = []
    for node in nodes:
        if node.op_type == "AveragePool":
            for attribute in node.attribute:
                if attribute.name == "kernel_shape" and len(attribute.ints) == 2:
                    kernels.append((int(attribute.ints[0]), int(attribute.ints[1])))
    return kernels


def openvino_pool_kernels(graph: object) -> list[tuple[int, int]] | None:
    """As ``onnx_pool_kernels``, from an OpenVINO model (its AvgPool operations)."""
    try:
        return [tuple(int(k) for k in op.get_attributes()["kernel"])  # type: ignore[misc]
                for op in graph.get_ops()  # type: ignore[attr-defined]
                if op.get_type_name() == "AvgPool"]
    except Exception:  # an OpenVINO without these calls: not verified, and said so
        return None


def verified_min_size(claimed: tuple[int, int], kernels: list[tuple[int, int]] | None
                      ) -> tuple[tuple[int, int], str | None]:
    """The smallest HxW a graph answers exactly: the metadata's ``claimed`` one, raised to what
    the graph's own SPP pools need (a 1/4-resolution map at least as large as the largest
    kernel: below it PyTorch clips the pools and the graph cannot, so the answer drifts
    off, 0.67 px mean at 192x256 for a 64-pool network). The metadata is a text anyone can
    edit; the pools are the computation. Returns the size and a line to say when the
    metadata was wrong or could not be checked."""
    if kernels is None or not kernels:
        return claimed, ("its size range comes from the file's metadata and was not verified "
                         "against the graph (" + ("no average pool found in it)" if kernels == []
                                                 else "install onnx to verify it)"))
    needed = (QUARTER * max(k[0] for k in kernels), QUARTER * max(k[1] for k in kernels))
    if claimed[0] >= needed[0] and claimed[1] >= needed[1]:
        return claimed, None
    raised = (max(claimed[0], needed[0]), max(claimed[1], needed[1]))
    return raised, (f"its metadata claims pairs from {claimed[0]}x{claimed[1]}, but the graph's "
                    f"{max(k[0] for k in kernels)}-pixel pools need at least "
                    f"{needed[0]}x{needed[1]}: smaller pairs are refused (the metadata was "
                    "edited or is wrong)")


def _import_runtime(name: str, extra: str) -> ModuleType:
    """The runtime's module, or a one-line error naming the optional extra that installs it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ConfigError(f"{name} needs the '{extra}' extra: pip install "
                          f"'cnnlab[{extra}]'", parameter="runtime") from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


class ExportedStereoModel:
    """An exported PSMNet run by ``runtime`` ("onnxruntime" or "openvino") on the CPU, in fp32
    (``runtime_precision`` says why and refuses other precisions)."""

    device = torch.device("cpu")

    def __init__(self, path: Path, runtime: str, threads: int | None = None):
        self.path = Path(path)
        self.runtime = runtime
        if runtime not in RUNTIMES[1:]:
            raise ConfigError(f"{runtime}: choose from {', '.join(RUNTIMES[1:])} "
                              "for an exported model", parameter="runtime")
        threads = threads or torch.get_num_threads()
        if runtime == "onnxruntime":
            self._run, meta = self._onnxruntime(threads)
            kernels = onnx_pool_kernels(self.path)
        else:
            self._run, meta, kernels = self._openvino(threads)
        self.card, claimed, self.max_size = card_and_sizes(self.path, meta)
        # the smallest size, checked against the graph; the largest is what the export
        # checked, not a limit of the graph (larger pairs run alike, if memory allows)
        self.min_size, self.size_note = verified_min_size(claimed, kernels)
        self.max_disparity = int(self.card.kwargs["max_disparity"])

    def _onnxruntime(self, threads: int):
        onnxruntime = _import_runtime("onnxruntime", "export")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        try:
            session = onnxruntime.InferenceSession(str(self.path), options,
                                                   providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own error types for a bad file
            raise DataError(f"{self.path}: not a model ONNX Runtime can load "
                            f"({_first_line(exc)})") from None
        meta = dict(session.get_modelmeta().custom_metadata_map)
        return (lambda left, right: session.run(None, {"left": left, "right": right})[0]), meta

    def _openvino(self, threads: int):
        openvino = _import_runtime("openvino", "openvino")
        core = openvino.Core()
        try:
            graph = core.read_model(str(self.path))
        except Exception as exc:  # OpenVINO's own error types for a bad file
            raise DataError(f"{self.path}: not a model OpenVINO can read "
                            f"({_first_line(exc)})") from None
        try:
            info = graph.get_rt_info()  # the ONNX metadata, as OVAny values
            keys = list(info["framework"].keys()) if "framework" in info else []
            meta = {key: graph.get_rt_info(["framework", key]).astype(str) for key in keys}
        except Exception:  # metadata that is not text: the card check below names the file
            meta = {}
        card_and_sizes(self.path, meta)  # before the graph is compiled
        kernels = openvino_pool_kernels(graph)
        try:
            compiled = core.compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                         "INFERENCE_NUM_THREADS": threads})
        except Exception as exc:
            raise DataError(f"{self.path}: a graph OpenVINO cannot compile "
                            f"({_first_line(exc)})") from None
        request = compiled.create_infer_request()

        def run(left: np.ndarray, right: np.ndarray) -> np.ndarray:
            request.infer({"left": left, "right": right})
            return request.get_output_tensor(0).data.copy()
        return run, meta, kernels

    def set_max_disparity(self, max_disparity: int) -> ExportedStereoModel:
        """The exported graph searches a fixed range: only that one is accepted."""
        if max_disparity != self.max_disparity:
            raise ConfigError(f"{self.path.name}: the exported graph searches {self.max_disparity} "
                              f"px, not {max_disparity}; `scale` needs `runtime` torch")
        return self

    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        """The size the graph runs a HxW pair at: padded to multiples of 16, as PSMNet pads.
        A pair outside the exported range is refused: a larger one does not fit the graph,
        and padding a smaller one further would change the result (the SPP's 64x64 pools
        would average the padding in)."""
        padded = (-(-height // 16) * 16, -(-width // 16) * 16)
        if not all(low <= n <= high for low, n, high in zip(self.min_size, padded,
                                                              self.max_size)):
            raise DataError(f"{self.path}: exported for pairs of {self.min_size[0]}x"
                            f"{self.min_size[1]} to {self.max_size[0]}x{self.max_size[1]} "
                            f"(HxW, after padding to multiples of 16), this one is "
                            f"{height}x{width}; export again with another `min_size`/"
                            "`max_size`, or use `runtime` torch")
        return padded

    def __call__(self, left: torch.Tensor, right: torch.Tensor) -> dict[str, torch.Tensor]:
        height, width = left.shape[-2:]
        full_h, full_w = self.padded_size(height, width)
        pad = (0, full_w - width, 0, full_h - height)
        def view(x: torch.Tensor) -> np.ndarray:
            return np.ascontiguousarray(F.pad(x.float().cpu(), pad).numpy())
        out = [self._run(view(left[i:i + 1]), view(right[i:i + 1]))
               for i in range(left.shape[0])]
        disparity = torch.from_numpy(np.concatenate(out))[:, :height, :width]
        return {"disparity": disparity, "disparities": [disparity]}

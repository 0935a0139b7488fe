"""PSMNet's 3-D stage in int8 (``precision="int8"``): eager-mode post-training static
quantization run by PyTorch's x86 engine (oneDNN, VNNI), for CPUs with VNNI.

What runs in int8: the stage from the cost volume to the classifiers' conv-BN-ReLU
(cost_stem, cost_residual, the three hourglasses, the classifiers' first conv), built from the
BN-folded float weights: per-channel symmetric qint8 weights, quint8 activations with MinMax
scales from calibration, ReLUs fused into the convs and the residual sums done in the
quantized domain (add / add_relu), so the stage stays in int8 from end to end. The features
are quantized, not the volume: the volume is built from their uint8 codes
(``quantized_volume``). The stride-2 transposed convs run as regular int8 convs giving the 8
output parities as channels, then a depth-to-space shuffle (``SubpixelDeconv``). The
classifiers' last 32 -> 1 convs (their weights in fp32, on the exact int8 codes,
``last_convs``), and the soft-argmin are fp32; the 2-D feature extractor runs in bf16 where the
CPU has it natively, else fp32. Inference uses only the final cost, so only it is computed.

Measured (bench/stereo_int8.py, official KITTI 2015 weights, 384x1248, 2 cores of an Intel
Xeon with AMX): int8 0.997 s, bf16 1.422 s (1.43x), fp32 4.685 s; against fp32 on the 9
shared pairs, KITTI D1 changes by at most 0.021 point and Middlebury bad-2 by at most 0.046
point.

Calibration: observers on the activations of the fused fp32 stage run on synthetic scenes
(``CALIBRATION``: fixed seed and size, so deterministic); ~7 s, so the resulting qparams are
kept in the user cache (``int8/<key>.json``), keyed by a hash of the weights, the range and
the recipe (``qparams_for``).

torch 2.14 marks these eager-mode quantized modules deprecated (PT2E, in torchao, is their
successor; not a dependency here): their warnings are silenced where the stage is built.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.ao.nn.intrinsic.quantized as nniq
import torch.ao.nn.quantized as nnq
import torch.nn.functional as F
from torch import nn
from torch.ao.quantization.observer import HistogramObserver, MinMaxObserver

from cnnlab.data.root import user_cache_dir
from cnnlab.engine.atomic import atomic_write_json
from cnnlab.engine.precision import float_precision, inference_autocast
from cnnlab.errors import ConfigError
from cnnlab.stereo.models.blocks import _shifted_sum, one_channel_conv3d
from cnnlab.stereo.models.psmnet import PSMNet

ENGINE = "x86"  # oneDNN for these convs (symmetric weights, no output_padding), VNNI
HOURGLASSES = 3
# the calibration recipe: synthetic scenes (count, (height, width), seed) and the observer;
# part of the cache key, so changing it recalibrates
CALIBRATION = {"scenes": 4, "size": (256, 512), "seed": 1, "observer": "minmax"}
CACHE_VERSION = 1
Log = Callable[[str], None]


@contextmanager
def _quiet():
    """The eager-mode quantized modules and constructors warn that they are deprecated
    (torch 2.14): what this torch offers without torchao, so the warning says nothing to act
    on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*quantiz.*deprecated.*")
        warnings.filterwarnings("ignore", category=UserWarning, module="torch.ao")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch.ao")
        warnings.filterwarnings("ignore", category=FutureWarning, module="torch.ao")
        yield


# --- the 3-D stage, wired once for the float mirror and the int8 stage --------------------

def aggregate(ops, volume):
    """``PSMNet.aggregate_costs`` (stacked hourglass) through ``ops``: ``ops.conv(name, x,
    relu)`` runs the conv named like the model's ConvBN, ``ops.add(name, a, b, relu)`` a
    residual sum. Returns the classifiers' conv-BN-ReLU outputs (their last conv is left to
    the caller)."""
    x = ops.conv("cost_stem.0", volume, relu=True)
    cost0 = ops.conv("cost_stem.2", x, relu=True)
    x = ops.conv("cost_residual.0", cost0, relu=True)
    cost0 = ops.add("cost_residual", ops.conv("cost_residual.2", x), cost0)
    out, pre1, post, scored = cost0, None, None, []
    for i in range(HOURGLASSES):
        name = f"hourglasses.{i}"
        x = ops.conv(f"{name}.conv1.0", out, relu=True)
        if post is None:
            pre = ops.conv(f"{name}.conv2", x, relu=True)
        else:
            pre = ops.add(f"{name}.pre", ops.conv(f"{name}.conv2", x), post, relu=True)
        x = ops.conv(f"{name}.conv4.0", ops.conv(f"{name}.conv3.0", pre, relu=True), relu=True)
        post = ops.add(f"{name}.post", ops.conv(f"{name}.conv5", x),
                       pre if pre1 is None else pre1, relu=True)
        pre1 = pre if pre1 is None else pre1
        out = ops.add(f"{name}.out", ops.conv(f"{name}.conv6", post), cost0)
        scored.append(ops.conv(f"classifiers.{i}.0", out, relu=True))
    return scored


class _Recorder:
    """``aggregate``'s ops that only note each layer: (name, "conv" or "add", relu)."""

    def __init__(self):
        self.layers: list[tuple[str, str, bool]] = []

    def conv(self, name, x, relu=False):
        self.layers.append((name, "conv", relu))
        return name  # not None: ``aggregate`` branches on it

    def add(self, name, a, b, relu=False):
        self.layers.append((name, "add", relu))
        return name


def stage_layers() -> list[tuple[str, str, bool]]:
    """(name, "conv" or "add", relu) of every layer of the stage, in order."""
    recorder = _Recorder()
    aggregate(recorder, None)
    return recorder.layers


def activation_names() -> list[str]:
    """Every tensor the int8 stage holds in int8, in order ("volume" first)."""
    return ["volume"] + [name for name, _, _ in stage_layers()]


def _fused(model: PSMNet, name: str) -> nn.Module:
    block = model.get_submodule(name)
    if block.fused is None:
        raise ValueError(f"{name}: call model.fuse_for_inference() first")
    return block.fused


def _last_weights(model: PSMNet) -> list[torch.Tensor]:
    return [model.classifiers[i][2].weight for i in range(HOURGLASSES)]


class FloatStage:
    """The fused fp32 stage through ``aggregate``, each activation shown to its observer."""

    def __init__(self, model: PSMNet, observers: dict[str, nn.Module] | None = None):
        self.model, self.observers = model, observers

    def _seen(self, name, x):
        if self.observers is not None:
            self.observers[name](x)
        return x

    def conv(self, name, x, relu=False):
        y = _fused(self.model, name)(x)
        return self._seen(name, F.relu(y) if relu else y)

    def add(self, name, a, b, relu=False):
        y = a + b
        return self._seen(name, F.relu(y) if relu else y)

    def costs(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """Features -> the final (B, 1, D/4, H/4, W/4) cost, fp32."""
        volume = self._seen("volume", self.model.build_cost_volume(left.float(), right.float()))
        scored = aggregate(self, volume)
        return sum(one_channel_conv3d(x, w) for x, w in zip(scored, _last_weights(self.model)))


def _per_channel(weight: torch.Tensor, axis: int) -> torch.Tensor:
    """Symmetric per-channel qint8 (zero point 0: oneDNN's condition)."""
    dims = [d for d in range(weight.dim()) if d != axis]
    scales = weight.abs().amax(dim=dims).clamp(min=1e-12).double() / 127
    return torch.quantize_per_channel(weight.float().contiguous(), scales,
                                      torch.zeros_like(scales, dtype=torch.long), axis,
                                      torch.qint8)


def codes(x: torch.Tensor) -> torch.Tensor:
    """The uint8 codes of a quint8 tensor, a view sharing its memory (``int_repr`` copies,
    element by element: 8 ms for 14M codes)."""
    return torch.empty(0, dtype=torch.uint8).set_(x.untyped_storage(), x.storage_offset(),
                                                  x.size(), x.stride())


def empty_quint8(shape, scale: float, zero_point: int) -> torch.Tensor:
    return torch._empty_affine_quantized(shape, scale=scale, zero_point=zero_point,
                                         dtype=torch.quint8,
                                         memory_format=torch.channels_last_3d)


def quantized_conv(conv: nn.Module, relu: bool, scale: float, zero_point: int) -> nn.Module:
    """An int8 module computing ``conv`` (a fused Conv3d or ConvTranspose3d with bias), output
    (ReLU'd if ``relu``) quantized with ``scale`` and ``zero_point``."""
    if isinstance(conv, nn.ConvTranspose3d):
        if relu:
            raise ValueError("no fused ReLU for a transposed conv here")
        return SubpixelDeconv(conv, scale, zero_point)
    kind = nniq.ConvReLU3d if relu else nnq.Conv3d
    module = kind(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                  conv.padding, conv.dilation, conv.groups, True)
    module.set_weight_bias(_per_channel(conv.weight.detach(), 0), conv.bias.detach().float())
    module.scale, module.zero_point = float(scale), int(zero_point)
    return module


# output parity -> {input offset: kernel tap} of a 3-tap, stride-2, padding-1,
# output_padding-1 transposed conv along one axis: y[2m] = w1 x[m], y[2m+1] = w2 x[m] +
# w0 x[m+1]
_TAPS = ({0: 1}, {0: 2, 1: 0})


class SubpixelDeconv(nn.Module):
    """A 3x3x3 stride-2 transposed conv (padding 1, output_padding 1) as one int8 conv with a
    2x2x2 kernel giving the 8 output parities as channels, then a depth-to-space shuffle of
    the uint8 codes.

    PyTorch's quantized ConvTranspose3d does not serve here: oneDNN refuses output_padding,
    gives wrong values (relative error ~1.4) when the output channels differ from the input's
    (2-D too, torch 2.14.1) and runs 64 -> 64 at 1/8 resolution 1.9x slower than the bf16
    transposed conv (68 vs 36 ms, 1 thread); fbgemm takes output_padding but is 16x slower
    than oneDNN; and per-channel weights are refused for transposed convs. The 2x2x2 conv
    does 64/27 of the transposed conv's multiply-adds (zero taps) and still runs ~6x faster.
    """

    def __init__(self, conv: nn.ConvTranspose3d, scale: float, zero_point: int):
        super().__init__()
        if (conv.kernel_size, conv.stride, conv.padding, conv.output_padding, conv.groups,
                conv.dilation) != ((3,) * 3, (2,) * 3, (1,) * 3, (1,) * 3, 1, (1,) * 3):
            raise ValueError(f"{conv}: only 3x3x3, stride 2, padding 1, output_padding 1")
        weight = conv.weight.detach().float()  # (C_in, C_out, 3, 3, 3)
        n_in, n_out = weight.shape[:2]
        kernel = weight.new_zeros(2, 2, 2, n_out, n_in, 2, 2, 2)
        for pd, td in enumerate(_TAPS):
            for ph, th in enumerate(_TAPS):
                for pw, tw in enumerate(_TAPS):
                    for (jd, kd), (jh, kh), (jw, kw) in ((a, b, c) for a in td.items()
                                                        for b in th.items()
                                                        for c in tw.items()):
                        kernel[pd, ph, pw, :, :, jd, jh, jw] = weight[:, :, kd, kh, kw].T
        # padding 1 on both sides: output m' reads inputs m' - 1, m'; m' = 1..n are wanted
        self.conv = nnq.Conv3d(n_in, 8 * n_out, 2, 1, 1, bias=True)
        self.conv.set_weight_bias(_per_channel(kernel.reshape(8 * n_out, n_in, 2, 2, 2), 0),
                                  conv.bias.detach().float().repeat(8))
        self.conv.scale, self.conv.zero_point = float(scale), int(zero_point)
        if n_out % 8:
            raise ValueError(f"{conv}: output channels must be a multiple of 8")
        self.channels = n_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        b, _, d, h, w = y.shape
        d, h, w = d - 1, h - 1, w - 1
        out = empty_quint8((b, self.channels, 2 * d, 2 * h, 2 * w), y.q_scale(),
                           y.q_zero_point())
        # channels_last_3d codes: (B, D+1, H+1, W+1, [pd, ph, pw, C]) in memory -> (B, [D,
        # pd], [H, ph], [W, pw], C), moved 8 codes at a time (3.5x faster than 1 at a time)
        wide = self.channels // 8
        source = codes(y).permute(0, 2, 3, 4, 1).view(torch.int64)[:, 1:, 1:, 1:]
        source = source.unflatten(4, (2, 2, 2, wide)).permute(0, 1, 4, 2, 5, 3, 6, 7)
        target = codes(out).permute(0, 2, 3, 4, 1).view(torch.int64)
        target.view(b, d, 2, h, 2, w, 2, wide).copy_(source)
        return out


def quantized_volume(left: torch.Tensor, right: torch.Tensor, levels: int, scale: float,
                     zero_point: int) -> torch.Tensor:
    """(B, C, H, W) x2 fp32 features -> (B, 2C, D, H, W) quint8 concatenation volume,
    channels_last_3d: ``build_concat_volume`` on the features' uint8 codes (the empty
    entries hold the zero point, i.e. 0), a quarter of the fp32 volume's memory traffic."""
    left_codes, right_codes = (
        torch.quantize_per_tensor(x.float(), scale, zero_point, torch.quint8).int_repr()
        .permute(0, 2, 3, 1) for x in (left, right))  # (B, H, W, C)
    b, height, width, channels = left_codes.shape
    padded = F.pad(right_codes.permute(0, 3, 1, 2), (levels - 1, 0), value=zero_point
                   ).permute(0, 2, 3, 1)
    columns = torch.arange(width).view(1, 1, width, 1)
    empty = torch.tensor(zero_point, dtype=torch.uint8)
    planes = []
    for d in range(levels):
        start = levels - 1 - d
        planes.append(torch.cat([torch.where(columns >= d, left_codes, empty),
                                 padded[:, :, start:start + width]], dim=-1))
    volume = empty_quint8((b, 2 * channels, levels, height, width), scale, zero_point)
    torch.stack(planes, dim=1, out=codes(volume).permute(0, 2, 3, 4, 1))
    return volume


class Int8Stage(nn.Module):
    """The 3-D stage in int8: features -> the final (B, 1, D/4, H/4, W/4) cost in fp32."""

    def __init__(self, model: PSMNet, qparams: dict[str, tuple[float, int]]):
        super().__init__()
        torch.backends.quantized.engine = ENGINE  # process-wide: the engine these convs pack for
        self.levels = model.max_disparity // 4
        self.qparams = qparams
        self.convs = nn.ModuleDict()
        self.sums = nn.ModuleDict()
        with _quiet():
            for name, kind, relu in stage_layers():
                key = name.replace(".", "_")  # ModuleDict keys take no dots
                if kind == "conv":
                    self.convs[key] = quantized_conv(_fused(model, name), relu, *qparams[name])
                else:
                    self.sums[key] = nnq.QFunctional()
                    self.sums[key].scale, self.sums[key].zero_point = qparams[name]
        self.last = [w.detach().float() for w in _last_weights(model)]

    # ops for ``aggregate``
    def conv(self, name, x, relu=False):
        return self.convs[name.replace(".", "_")](x)

    def add(self, name, a, b, relu=False):
        adder = self.sums[name.replace(".", "_")]
        return adder.add_relu(a, b) if relu else adder.add(a, b)

    def forward(self, left: torch.Tensor, right: torch.Tensor, levels: int | None = None
                ) -> torch.Tensor:
        """(B, 32, H/4, W/4) features x2 (any float dtype) -> the final cost; ``levels``
        (D/4) defaults to the range the stage was built at (scaled inference changes it)."""
        if torch.compiler.is_exporting():  # a graph of eager quantized modules would not run
            raise ConfigError("int8: an exported graph runs in fp32; export the model loaded "
                              "without `precision` int8", parameter="precision")
        with torch.autocast("cpu", enabled=False), _quiet():
            volume = quantized_volume(left.float(), right.float(), levels or self.levels,
                                      *self.qparams["volume"])
            scored = aggregate(self, volume)
            return last_convs(scored, self.last)


def last_convs(scored: list[torch.Tensor], weights: list[torch.Tensor],
               chunk: int = 1 << 16) -> torch.Tensor:
    """(B, 32, D, H, W) quint8 x3, (1, 32, 3, 3, 3) fp32 weights x3 -> the final cost, sum_i
    conv3d(scored_i, w_i, padding=1), (B, 1, D, H, W) fp32.

    ``one_channel_conv3d`` for the three at once: each voxel's 27 tap sums are accumulated
    over the three inputs in fp32 (the codes are exact in fp32 and the scale goes into the
    weights), a chunk of voxels at a time so that the fp32 codes stay in cache, then one set
    of shifted sums: 3x faster than dequantizing each and calling ``one_channel_conv3d``."""
    b, c, d, h, w = scored[0].shape
    n = b * d * h * w
    planes = torch.empty(27, n)
    matrices = [weight.reshape(c, 27).t().float() * x.q_scale()
                for x, weight in zip(scored, weights)]
    flats = [codes(x).permute(1, 0, 2, 3, 4).reshape(c, n) for x in scored]  # views
    zero_points = [x.q_zero_point() for x in scored]
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        out = planes[:, start:stop]
        for i, (matrix, flat, zero_point) in enumerate(zip(matrices, flats, zero_points)):
            values = flat[:, start:stop].float()
            if zero_point:
                values -= zero_point
            if i == 0:
                torch.mm(matrix, values, out=out)
            else:
                out.addmm_(matrix, values)
    z = _shifted_sum(planes.view(3, 3, 3, b, d, h, w), 2, 5)  # over kw
    z = _shifted_sum(z, 1, 3)  # over kh
    return _shifted_sum(z, 0, 1).unsqueeze(1)  # over kd



# --- calibration ------------------------------------------------------------------------

def _observer(kind: str) -> nn.Module:
    if kind == "histogram":
        return HistogramObserver(dtype=torch.quint8, qscheme=torch.per_tensor_affine,
                                 reduce_range=False)
    if kind == "minmax":
        return MinMaxObserver(dtype=torch.quint8, qscheme=torch.per_tensor_affine)
    raise ValueError(f"{kind!r}: choose histogram or minmax")


def calibrate(model: PSMNet, pairs: Iterable, observer: str, features_precision: str
              ) -> dict[str, tuple[float, int]]:
    """name -> (scale, zero point) of every int8 activation, from the fused fp32 stage run on
    ``pairs`` (normalised (1, 3, H, W) tensors, padded to a multiple of 16)."""
    observers = {name: _observer(observer) for name in activation_names()}
    stage = FloatStage(model, observers)
    with torch.no_grad(), _quiet():
        for left, right in pairs:
            with inference_autocast(left.device, features_precision):
                features = [model.features(x.contiguous(memory_format=torch.channels_last))
                            for x in (left, right)]
            stage.costs(*features)
    qparams = {}
    for name, seen in observers.items():
        scale, zero_point = seen.calculate_qparams()
        qparams[name] = (float(scale), int(zero_point))
    return qparams


def padded_pair(sample, preprocess: dict, size: tuple[int, int] | None = None
                ) -> list[torch.Tensor]:
    """A StereoSample's views normalised with ``preprocess`` (a card's "mean" and "std") as
    (1, 3, H, W), padded to a multiple of 16 (or cropped from the bottom left / padded to
    ``size``)."""
    from cnnlab.stereo.data.preprocess import to_input

    mean, std = preprocess["mean"], preprocess["std"]
    pair = []
    for image in (sample.left, sample.right):
        x = to_input(image, torch.device("cpu"), mean, std)
        if size is not None:
            x = x[..., -size[0]:, :size[1]]
            height, width = size
        else:
            height, width = (-(-n // 16) * 16 for n in x.shape[-2:])
        pair.append(F.pad(x, (0, width - x.shape[3], 0, height - x.shape[2])))
    return pair


def synthetic_pairs(preprocess: dict, count: int, size: tuple[int, int], max_disparity: int,
                    seed: int) -> list[list[torch.Tensor]]:
    """``count`` synthetic scenes (seed ``seed``, disparities within 3/4 of
    ``max_disparity``), normalised with ``preprocess``."""
    from cnnlab.stereo.data.datasets import SyntheticStereo
    from cnnlab.stereo.data.synthetic import scene_max_disparity

    scenes = SyntheticStereo(count, *size, max_disparity=scene_max_disparity(max_disparity),
                             seed=seed)
    return [padded_pair(scenes.load(i), preprocess) for i in range(count)]




# --- cached calibration and the stage on a model --------------------------------------------

def weights_digest(model: nn.Module) -> str:
    """sha256 of the model's own weights (names, dtypes, shapes, values; the BN-folded copies,
    derived from them, left out)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if ".fused." in f".{name}":
            continue
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)};".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def cache_key(model: PSMNet, features: str, preprocess: dict) -> dict:
    """What the qparams depend on: the weights, the range, the calibration recipe, the
    normalisation of the scenes, the features' precision and the torch that measured them."""
    return {"version": CACHE_VERSION, "weights_sha256": weights_digest(model),
            "max_disparity": model.max_disparity, "features": features,
            "preprocess": {k: list(v) if isinstance(v, tuple) else v
                           for k, v in sorted(preprocess.items())},
            "torch": torch.__version__,
            "calibration": {k: list(v) if isinstance(v, tuple) else v
                            for k, v in CALIBRATION.items()}}


def cache_path(key: dict, folder: Path | None = None) -> Path:
    """``folder`` (default: the user cache's int8/) / <hash of ``key``>.json."""
    text = json.dumps(key, sort_keys=True)
    name = hashlib.sha256(text.encode()).hexdigest()[:24]
    return (folder or user_cache_dir() / "int8") / f"{name}.json"


def _read_cached(path: Path, key: dict) -> dict[str, tuple[float, int]] | None:
    """The qparams stored at ``path`` for ``key``; None when missing, damaged or another
    key's (then they are computed again)."""
    try:
        data = json.loads(path.read_text())
        if data.get("key") != key:
            return None
        qparams = {name: (float(data["qparams"][name][0]), int(data["qparams"][name][1]))
                   for name in activation_names()}
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None
    if not all(math.isfinite(scale) and scale > 0 and 0 <= zero_point <= 255
               for scale, zero_point in qparams.values()):
        return None
    return qparams


def qparams_for(model: PSMNet, preprocess: dict, log: Log | None = None,
                folder: Path | None = None) -> dict[str, tuple[float, int]]:
    """name -> (scale, zero point) of every int8 activation of ``model`` (fused, eval mode):
    read from the cache in ``folder`` (default the user cache's int8/), else calibrated on
    ``CALIBRATION``'s synthetic scenes normalised with ``preprocess`` (logged to ``log``) and
    written there atomically. A cache that cannot be written is not an error: the qparams
    are still returned."""
    device = torch.device("cpu")
    features = float_precision(device)
    key = cache_key(model, features, preprocess)
    path = cache_path(key, folder)
    cached = _read_cached(path, key)
    if cached is not None:
        return cached
    if log is not None:
        log(f"Calibrating int8 on {CALIBRATION['scenes']} synthetic scenes (once per model, "
            "~7 s)")
    pairs = synthetic_pairs(preprocess, CALIBRATION["scenes"], CALIBRATION["size"],
                            model.max_disparity, CALIBRATION["seed"])
    qparams = calibrate(model, pairs, CALIBRATION["observer"], features)  # seeded scenes
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"key": key, "qparams": {n: list(v) for n, v in
                                                          qparams.items()}})
    except OSError as exc:
        if log is not None:
            log(f"note: the int8 calibration could not be cached in {path.parent} ({exc})")
    return qparams


def check_int8_model(model: nn.Module) -> None:
    """Refuse, naming ``precision``, a network the int8 stage cannot mirror."""
    reason = None
    if not isinstance(model, PSMNet):
        reason = f"for cnnlab's PSMNet only, not {type(model).__name__}"
    elif model.config.variant != "stackhourglass":
        reason = f"for the stackhourglass variant only, not {model.config.variant}"
    elif "hourglass" in model.parts:
        reason = "not with a hourglass of your own (the int8 stage mirrors cnnlab's)"
    elif next(model.parameters()).device.type != "cpu":
        reason = "runs on the CPU only"
    if reason:
        raise ConfigError(f"int8: {reason}; use bf16 or fp32", parameter="precision")


def int8_stage(model: PSMNet, preprocess: dict, log: Log | None = None,
               folder: Path | None = None) -> Int8Stage:
    """``model``'s 3-D stage in int8 (``model`` fused, in eval mode), its qparams from the
    cache or calibrated once (``qparams_for``)."""
    check_int8_model(model)
    if model.training:
        raise ConfigError("int8: for inference only; call model.eval() first",
                          parameter="precision")
    if any(getattr(m, "fused", 0) is None for m in model.modules()):
        model.fuse_for_inference()
    return Int8Stage(model, qparams_for(model, preprocess, log, folder))


def attach_int8_stage(model: PSMNet, preprocess: dict, log: Log | None = None,
                      folder: Path | None = None) -> PSMNet:
    """Build ``model``'s int8 stage unless it has one, and attach it (``use_int8_stage``):
    in eval mode its ``aggregate_costs`` then runs it; ``train()`` drops it."""
    if getattr(model, "int8_stage", None) is None:
        use_int8_stage(model, int8_stage(model, preprocess, log, folder))
    return model


def use_int8_stage(model: nn.Module, stage: Int8Stage | None) -> None:
    """Set ``model.int8_stage`` without making it a submodule: its packed int8 weights stay
    out of the state dict, ``.to()`` and ``.modules()`` (it is derived, CPU-only data)."""
    object.__setattr__(model, "int8_stage", stage)

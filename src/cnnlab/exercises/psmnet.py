"""Checkers for PSMNet's spatial pyramid pooling and stacked-hourglass module: drop-ins for
cnnlab's ``SpatialPyramidPooling`` and ``Hourglass``.

Three stages each: shapes on a random input; values against cnnlab's module with its weights
copied into the student's by order (eval mode: BN with its running statistics, which at batch
1 is the only mode a 1x1 pooled map allows); then the student's module inside the official
PSMNet on a real KITTI 2015 crop (see ``dropin``).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parameter import UninitializedParameter

from cnnlab.exercises.dropin import drop_in_step
from cnnlab.exercises.limits import DEFAULT_TIME_LIMIT, checking
from cnnlab.exercises.result import (
    CheckResult,
    Failure,
    Report,
    as_tensors,
    call,
    close,
    construct,
    max_difference,
    require_module_class,
    shape_text,
)
from cnnlab.exercises.transfer import WeightsMismatch, copy_by_order, randomize_norms
from cnnlab.stereo.models.psmnet import Hourglass, SpatialPyramidPooling

SPP_CHANNELS, SPP_BRANCH_CHANNELS, SPP_POOLS = 128, 32, (64, 32, 16, 8)
SPP_INPUT = (1, 128, 24, 80)  # a quarter-resolution map smaller than the largest pools
HOURGLASS_CHANNELS = 32
VOLUME = (1, 32, 12, 16, 32)  # (B, C, D/4, H/4, W/4)
HOURGLASS_OUTPUTS = ("out", "pre", "post")


def _lazy(module: nn.Module) -> bool:
    return any(isinstance(p, UninitializedParameter) for p in module.parameters())


def _weights_fit(report: Report) -> bool:
    """False, with a skipped step, when the weights did not fit by order (a drop-in would
    fail the same way)."""
    if isinstance(report.last_failure, WeightsMismatch):
        report.skip("drop-in into the official PSMNet: the weights do not fit by order (above)")
        return False
    return True


# ---------------------------------------------------------------------------------- SPP


def _spp_text(name: str, align_corners: bool) -> str:
    return (f"{name}({SPP_CHANNELS}, {SPP_BRANCH_CHANNELS}, {SPP_POOLS}, "
            f"align_corners={align_corners})")


def _build_spp(module_class: type, align_corners: bool, pools=SPP_POOLS) -> nn.Module:
    what = _spp_text(module_class.__name__, align_corners)
    module = construct(module_class, SPP_CHANNELS, SPP_BRANCH_CHANNELS, pools, align_corners,
                       what=what, signature="(channels, branch_channels, pools, align_corners)")
    if not isinstance(module, nn.Module):
        raise Failure(f"{what} is a {type(module).__name__}, not an nn.Module")
    return module.eval()


def _spp_outputs(module: nn.Module, x: torch.Tensor, what: str) -> list[torch.Tensor]:
    with torch.no_grad():
        try:
            outputs = call(module, x.clone(), what=what)
        except Failure as failure:
            if "size" not in str(failure):
                raise
            raise Failure(f"{failure}; pools larger than the map must be clipped to it: "
                          "windows (min(pool, H), min(pool, W))") from None
    return as_tensors(outputs, len(SPP_POOLS), what, "one (B, branch_channels, H, W) per pool")


def _spp_input() -> torch.Tensor:
    return torch.randn(SPP_INPUT, generator=torch.Generator().manual_seed(0))


def _check_spp_shapes(module_class: type) -> str:
    module = _build_spp(module_class, True)
    x = _spp_input()
    what = f"{_spp_text(module_class.__name__, True)} on x {shape_text(x)}"
    expected = (SPP_INPUT[0], SPP_BRANCH_CHANNELS, *SPP_INPUT[2:])
    for pool, output in zip(SPP_POOLS, _spp_outputs(module, x, what)):
        if tuple(output.shape) != expected:
            raise Failure(f"{what}: the output for pool {pool} has shape "
                          f"{shape_text(output)}, expected {shape_text(expected)} (pooled, "
                          "1x1 conv-BN-ReLU, then upsampled back to x's H, W)")
    return (f"output shapes: x {shape_text(x)} -> {len(SPP_POOLS)} x {shape_text(expected)}, "
            f"one per pool in the order {SPP_POOLS}")


def spp_branch(reference: SpatialPyramidPooling, x: torch.Tensor, index: int,
               pooling: str = "avg", upsampling: str = "bilinear",
               align_corners: bool | None = None, relu: bool = True) -> torch.Tensor:
    """One branch of cnnlab's SPP, or what a common mistake (an argument changed) computes."""
    height, width = x.shape[-2:]
    pool = reference.pools[index]
    window = (min(pool, height), min(pool, width))
    pooled = (F.avg_pool2d if pooling == "avg" else F.max_pool2d)(x, window, window)
    out = reference.branches[index][0](pooled)  # conv-BN
    out = F.relu(out) if relu else out
    if upsampling == "bilinear":
        corners = reference.align_corners if align_corners is None else align_corners
        return F.interpolate(out, (height, width), mode="bilinear", align_corners=corners)
    return F.interpolate(out, (height, width), mode=upsampling)


def _spp_diagnosis(reference: SpatialPyramidPooling, x: torch.Tensor, outputs: list,
                   index: int, expected: list) -> str:
    got = outputs[index]
    swapped = [j for j, e in enumerate(expected) if j != index and close(got, e)]
    if swapped:
        return (f"it is the output for pool {SPP_POOLS[swapped[0]]}: return one output per "
                f"pool in the order of pools {SPP_POOLS}")
    given = reference.align_corners
    choices = {
        "pooling": {"avg": None, "max": "max pooling instead of average pooling"},
        "upsampling": {"bilinear": None,
                       "nearest": "nearest instead of bilinear upsampling",
                       "nearest-exact": "nearest instead of bilinear upsampling"},
        "align_corners": {given: None,
                          not given: f"align_corners={not given} instead of the given "
                                     f"{given} (pass align_corners to F.interpolate)"},
        "relu": {True: None, False: "no ReLU after the branch's conv-BN"},
    }
    best: list[str] | None = None
    with torch.no_grad():
        for values in itertools.product(*(c.keys() for c in choices.values())):
            options = dict(zip(choices, values))
            if options["upsampling"] != "bilinear" and options["align_corners"] != given:
                continue  # align_corners means nothing to nearest
            mistakes = [choices[key][value] for key, value in options.items()
                        if choices[key][value] is not None]
            if not mistakes or (best is not None and len(mistakes) >= len(best)):
                continue
            if close(got, spp_branch(reference, x, index, **options)):
                best = mistakes
    return "; ".join(best) if best else "no common mistake matches"


def _check_spp_values(module_class: type, align_corners: bool) -> str:
    with torch.random.fork_rng(devices=[]):  # the caller's random state is left alone
        torch.manual_seed(1)
        reference = SpatialPyramidPooling(SPP_CHANNELS, SPP_BRANCH_CHANNELS, SPP_POOLS,
                                          align_corners)
    randomize_norms(reference, torch.Generator().manual_seed(1))
    reference.eval()
    module = _build_spp(module_class, align_corners)
    x = _spp_input()
    what = f"{_spp_text(module_class.__name__, align_corners)} on x {shape_text(x)}"
    if _lazy(module):
        _spp_outputs(module, x, what)
    copied = copy_by_order(reference, module, "your module", "cnnlab's SpatialPyramidPooling")
    outputs = _spp_outputs(module, x, what)
    with torch.no_grad():
        expected = reference(x)
    for index, (got, wanted) in enumerate(zip(outputs, expected)):
        if not close(got, wanted):
            diagnosis = _spp_diagnosis(reference, x, outputs, index, expected)
            raise Failure(f"{what}: the output for pool {SPP_POOLS[index]} (branch {index}) "
                          f"differs from cnnlab's with the same weights (max |difference| "
                          f"{max_difference(got, wanted):.3g}): {diagnosis}")
    return (f"values, align_corners={align_corners}: all {len(SPP_POOLS)} branches equal "
            f"cnnlab's in eval mode ({copied})")


def _spp_maker(module_class: type) -> Callable[[nn.Module], nn.Module]:
    def make(official: nn.Module) -> nn.Module:
        module = _build_spp(module_class, official.align_corners, tuple(official.pools))
        if _lazy(module):
            _spp_outputs(module, _spp_input(), "a forward pass creating the lazy layers")
        copy_by_order(official, module, "your module", "the official SPP")
        return module
    return make


def check_spp(module_class: type[nn.Module], weights_root: str | os.PathLike | None = None,
              data_root: str | os.PathLike | None = None, drop_in: bool = True,
              time_limit: float | None = DEFAULT_TIME_LIMIT) -> CheckResult:
    """Check a student's drop-in for cnnlab's ``SpatialPyramidPooling(channels,
    branch_channels, pools, align_corners)`` whose forward(x) returns one (B, branch_channels,
    H, W) tensor per pool: shapes, values with cnnlab's weights, then (``drop_in``) inside the
    official PSMNet on a KITTI 2015 crop, skipped when the weights or data are missing. Each
    call into the student's class gets ``time_limit`` seconds (None: no limit)."""
    require_module_class(module_class, "check_spp", "SpatialPyramidPooling")
    with checking("check_spp", time_limit):
        report = Report("check_spp")
        if not report.step(lambda: _check_spp_shapes(module_class)):
            return report.result()
        report.run(lambda: _check_spp_values(module_class, True),
                   lambda: _check_spp_values(module_class, False))
        if drop_in and _weights_fit(report):
            labels = [f"branch {i} (pool {pool})" for i, pool in enumerate(SPP_POOLS)]
            drop_in_step(report, {"features.spp": _spp_maker(module_class)},
                         {"features.spp": labels}, weights_root, data_root,
                         "drop-in as features.spp of the official PSMNet (KITTI 2015 weights)")
        return report.result()


# ----------------------------------------------------------------------------- Hourglass


def hourglass_variant(reference: Hourglass, x: torch.Tensor, presqu, postsqu,
                      use_postsqu: bool = True, use_presqu: bool = True, add_post: bool = True,
                      relu_pre: bool = True, relu_post: bool = True
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """cnnlab's Hourglass forward, or what a common mistake (a flag turned off) computes."""
    pre = reference.conv2(reference.conv1(x))
    if postsqu is not None and use_postsqu:
        pre = pre + postsqu
    pre = F.relu(pre) if relu_pre else pre
    out = reference.conv4(reference.conv3(pre))
    post = reference.conv5(out)
    if add_post:
        post = post + (presqu if presqu is not None and use_presqu else pre)
    post = F.relu(post) if relu_post else post
    return reference.conv6(post), pre, post


HOURGLASS_MISTAKES = {
    "use_postsqu": "postsqu ignored: pre must be relu(conv2(conv1(x)) + postsqu) when postsqu "
                   "is given",
    "use_presqu": "presqu ignored: post must be relu(conv5(out) + presqu) when presqu is given "
                  "(+ pre only when it is None)",
    "add_post": "the skip addition into conv5's output is missing: post = relu(conv5(out) + "
                "(presqu or pre))",
    "relu_pre": "missing ReLU on pre: pre = relu(conv2(conv1(x)) [+ postsqu])",
    "relu_post": "missing ReLU on post: post = relu(conv5(out) + (presqu or pre))",
}


def _volumes() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    b, c, d, h, w = VOLUME
    skip = (b, 2 * c, d // 2, h // 2, w // 2)
    return (torch.randn(VOLUME, generator=generator), torch.randn(skip, generator=generator),
            torch.randn(skip, generator=generator))


def _build_hourglass(module_class: type) -> nn.Module:
    what = f"{module_class.__name__}({HOURGLASS_CHANNELS})"
    module = construct(module_class, HOURGLASS_CHANNELS, what=what, signature="(channels)")
    if not isinstance(module, nn.Module):
        raise Failure(f"{what} is a {type(module).__name__}, not an nn.Module")
    return module.eval()


def _hourglass_cases(name: str) -> list[tuple[str, tuple]]:
    x, presqu, postsqu = _volumes()
    base = f"{name}({HOURGLASS_CHANNELS})(x {shape_text(x)}"
    return [(f"{base}, None, None)", (x, None, None)),
            (f"{base}, presqu {shape_text(presqu)}, postsqu {shape_text(postsqu)})",
             (x, presqu, postsqu))]


def _hourglass_outputs(module: nn.Module, inputs: tuple, what: str) -> list[torch.Tensor]:
    with torch.no_grad():
        outputs = call(module, *(t if t is None else t.clone() for t in inputs), what=what)
    return as_tensors(outputs, 3, what, "out, pre, post")


def _check_hourglass_shapes(module_class: type) -> str:
    module = _build_hourglass(module_class)
    b, c, d, h, w = VOLUME
    expected = (VOLUME, (b, 2 * c, d // 2, h // 2, w // 2), (b, 2 * c, d // 2, h // 2, w // 2))
    for what, inputs in _hourglass_cases(module_class.__name__):
        outputs = _hourglass_outputs(module, inputs, what)
        for label, got, wanted in zip(HOURGLASS_OUTPUTS, outputs, expected):
            if tuple(got.shape) != wanted:
                raise Failure(f"{what}: {label} has shape {shape_text(got)}, expected "
                              f"{shape_text(wanted)}")
    return (f"output shapes with presqu/postsqu None and given: out {shape_text(expected[0])}, "
            f"pre and post {shape_text(expected[1])}")


def _hourglass_diagnosis(reference: Hourglass, inputs: tuple, outputs: list) -> str:
    flags = [f for f in HOURGLASS_MISTAKES
             if inputs[1] is not None or f not in ("use_postsqu", "use_presqu")]
    with torch.no_grad():
        for count in (1, 2):
            for off in itertools.combinations(flags, count):
                variant = hourglass_variant(reference, *inputs, **dict.fromkeys(off, False))
                if all(close(g, v) for g, v in zip(outputs, variant)):
                    return "; ".join(HOURGLASS_MISTAKES[f] for f in off)
    return "no common mistake matches"


def _check_hourglass_values(module_class: type) -> str:
    with torch.random.fork_rng(devices=[]):  # the caller's random state is left alone
        torch.manual_seed(1)
        reference = Hourglass(HOURGLASS_CHANNELS)
    randomize_norms(reference, torch.Generator().manual_seed(1))
    reference.eval()
    module = _build_hourglass(module_class)
    cases = _hourglass_cases(module_class.__name__)
    if _lazy(module):
        what, inputs = cases[0]
        _hourglass_outputs(module, inputs, what)
    copied = copy_by_order(reference, module, "your module", "cnnlab's Hourglass")
    for what, inputs in cases:
        outputs = _hourglass_outputs(module, inputs, what)
        with torch.no_grad():
            expected = reference(*(t if t is None else t.clone() for t in inputs))
        differing = [(label, max_difference(got, wanted)) for label, got, wanted
                     in zip(HOURGLASS_OUTPUTS, outputs, expected) if not close(got, wanted)]
        if differing:
            labels = [label for label, _ in differing]
            listing = (labels[0] + " differs" if len(labels) == 1
                       else f"{', '.join(labels[:-1])} and {labels[-1]} differ")
            raise Failure(f"{what}: {listing} from cnnlab's with the same weights (max "
                          f"|difference| of {labels[0]}: {differing[0][1]:.3g}): "
                          f"{_hourglass_diagnosis(reference, inputs, outputs)}")
    return ("values with presqu/postsqu None and given: out, pre and post equal cnnlab's in "
            f"eval mode ({copied})")


def _hourglass_maker(module_class: type) -> Callable[[nn.Module], nn.Module]:
    def make(official: nn.Module) -> nn.Module:
        module = _build_hourglass(module_class)
        if _lazy(module):
            what, inputs = _hourglass_cases(module_class.__name__)[0]
            _hourglass_outputs(module, inputs, what)
        copy_by_order(official, module, "your module", "the official Hourglass")
        return module
    return make


def check_hourglass(module_class: type[nn.Module], weights_root: str | os.PathLike | None = None,
                    data_root: str | os.PathLike | None = None, drop_in: bool = True,
                    time_limit: float | None = DEFAULT_TIME_LIMIT) -> CheckResult:
    """Check a student's drop-in for cnnlab's ``Hourglass(channels)`` with forward(x, presqu,
    postsqu) -> (out, pre, post): shapes, values with cnnlab's weights, then (``drop_in``) as
    all three hourglasses of the official PSMNet on a KITTI 2015 crop, skipped when the
    weights or data are missing. Each call into the student's class gets ``time_limit``
    seconds (None: no limit)."""
    require_module_class(module_class, "check_hourglass", "Hourglass")
    with checking("check_hourglass", time_limit):
        report = Report("check_hourglass")
        if not report.step(lambda: _check_hourglass_shapes(module_class)):
            return report.result()
        report.step(lambda: _check_hourglass_values(module_class))
        if drop_in and _weights_fit(report):
            names = [f"hourglasses.{i}" for i in range(3)]
            drop_in_step(report, dict.fromkeys(names, _hourglass_maker(module_class)),
                         dict.fromkeys(names, HOURGLASS_OUTPUTS), weights_root, data_root,
                         "drop-in as the three hourglasses of the official PSMNet (KITTI 2015 "
                         "weights)")
        return report.result()

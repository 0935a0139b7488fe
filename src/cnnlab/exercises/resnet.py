"""Checker for d2l's ResNet ``Residual`` block, against a reference written here."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.exercises.limits import DEFAULT_TIME_LIMIT, checking
from cnnlab.exercises.result import (
    CheckResult,
    Failure,
    Report,
    as_tensor,
    call,
    close,
    construct,
    max_difference,
    require_module_class,
    shape_text,
)
from cnnlab.exercises.transfer import copy_by_order, randomize_norms

INPUT_SHAPE = (4, 3, 6, 6)
# constructor arguments -> output shape for INPUT_SHAPE; the last one only in the value checks
# (stride 1 with a projection: an unused conv3 gives an output, not a shape error)
SHAPE_CONFIGS = (((3, 3, False, 1), (4, 3, 6, 6)), ((3, 6, True, 2), (4, 6, 3, 3)))
VALUE_CONFIGS = ((3, 3, False, 1), (3, 6, True, 2), (3, 3, True, 1))


class ReferenceResidual(nn.Module):
    """d2l's Residual: two 3x3 conv-BN, the second without ReLU, plus the input (projected by a
    1x1 conv when ``use_1x1conv``), then ReLU."""

    def __init__(self, input_channels: int, num_channels: int, use_1x1conv: bool = False,
                 strides: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(input_channels, num_channels, 3, padding=1, stride=strides)
        self.conv2 = nn.Conv2d(num_channels, num_channels, 3, padding=1)
        self.conv3 = (nn.Conv2d(input_channels, num_channels, 1, stride=strides)
                      if use_1x1conv else None)
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return residual_variant(self, x)


def residual_variant(block: ReferenceResidual, x: torch.Tensor, add: bool = True,
                     final_relu: bool = True, project: bool = True, first_relu: bool = True
                     ) -> torch.Tensor:
    """The block's output, or what a common mistake (a flag turned off) outputs instead."""
    y = block.bn1(block.conv1(x))
    y = block.bn2(block.conv2(F.relu(y) if first_relu else y))
    if add:
        y = y + (block.conv3(x) if block.conv3 is not None and project else x)
    return F.relu(y) if final_relu else y


MISTAKES = (({"add": False}, "missing residual addition: the output is relu(bn2(conv2(...))) "
                             "without + X"),
            ({"final_relu": False}, "ReLU after the sum missing: return relu(Y + X)"),
            ({"project": False}, "projection shortcut not used when shapes change: with "
                                 "use_1x1conv=True, X must go through conv3 before the sum"),
            ({"first_relu": False}, "ReLU after bn1 missing: Y = relu(bn1(conv1(X)))"),
            ({"add": False, "final_relu": False}, "missing residual addition and final ReLU: "
                                                  "the output is bn2(conv2(...))"))


def _text(name: str, config: tuple) -> str:
    i, n, use_1x1conv, strides = config
    return f"{name}({i}, {n}, use_1x1conv={use_1x1conv}, strides={strides})"


def _construct(block_class: type, config: tuple) -> nn.Module:
    return construct(block_class, *config, what=_text(block_class.__name__, config),
                     signature="(input_channels, num_channels, use_1x1conv=False, strides=1)")


def _forward(block: nn.Module, x: torch.Tensor, what: str, config: tuple) -> torch.Tensor:
    try:
        return as_tensor(call(block, x.clone(), what=what), what)
    except Failure as failure:
        if config[2] and ("size" in str(failure) or "shape" in str(failure)):
            raise Failure(f"{failure}; projection shortcut not used when shapes change? With "
                          "use_1x1conv=True, X must go through conv3 (1x1, stride strides) "
                          "before the sum") from None
        raise


def _check_construction(block_class: type) -> str:
    for config in VALUE_CONFIGS:
        _construct(block_class, config)
    return "construction: " + ", ".join(_text(block_class.__name__, c) for c in VALUE_CONFIGS)


def _check_shapes(block_class: type, x: torch.Tensor) -> str:
    for config, expected in SHAPE_CONFIGS:
        block = _construct(block_class, config)
        what = f"{_text(block_class.__name__, config)} on X {shape_text(x)}"
        got = tuple(_forward(block, x, what, config).shape)
        if got != expected:
            hint = ""
            if config[3] != 1 and got[2:] == tuple(x.shape[2:]):
                hint = "; strides=2 must go to conv1 and conv3 (the output halves)"
            raise Failure(f"output of the wrong size for {what}: expected "
                          f"{shape_text(expected)}, got {shape_text(got)}{hint}")
    return "output shapes: " + ", ".join(
        f"{shape_text(x)} -> {shape_text(expected)}" for _, expected in SHAPE_CONFIGS)


def _check_values(block_class: type, x: torch.Tensor, report: Report) -> str:
    name = block_class.__name__
    copied = ""
    for index, config in enumerate(VALUE_CONFIGS):
        with torch.random.fork_rng(devices=[]):  # the caller's random state is left alone
            torch.manual_seed(index)
            reference = ReferenceResidual(*config)
        randomize_norms(reference, torch.Generator().manual_seed(index))
        block = _construct(block_class, config)
        what = f"{_text(name, config)} on X {shape_text(x)}"
        _forward(block, x, what, config)  # creates lazy layers' parameters
        copied = copy_by_order(reference, block, f"your {_text(name, config)}",
                               f"d2l's Residual{_text('', config)}")
        reference.eval()
        block.eval()
        with torch.no_grad():
            expected = reference(x)
            got = _forward(block, x, f"{what} (eval mode)", config)
        if close(got, expected):
            continue
        with torch.no_grad():
            found = [text for flags, text in MISTAKES
                     if close(got, residual_variant(reference, x, **flags))]
        diagnosis = found[0] if found else "no common mistake matches"
        report.figures["max_difference"] = max_difference(got, expected)
        raise Failure(f"wrong values for {what} with the reference's weights, eval mode (max "
                      f"|difference| {max_difference(got, expected):.3g}): {diagnosis}")
    return (f"values in eval mode for {len(VALUE_CONFIGS)} configurations with the "
            f"reference's weights ({copied})")


def check_residual_block(block_class: type[nn.Module], time_limit: float | None = DEFAULT_TIME_LIMIT
                         ) -> CheckResult:
    """Check a student's ``Residual(input_channels, num_channels, use_1x1conv=False,
    strides=1)`` (d2l's ResNet block): construction, shapes, then values with the reference's
    weights copied in by order (its attribute names do not matter). Each call into the
    student's class (construction, forward) gets ``time_limit`` seconds (None: no limit)."""
    require_module_class(block_class, "check_residual_block", "Residual")
    with checking("check_residual_block", time_limit):
        report = Report("check_residual_block")
        x = torch.randn(INPUT_SHAPE, generator=torch.Generator().manual_seed(0))
        report.run(lambda: _check_construction(block_class),
                   lambda: _check_shapes(block_class, x),
                   lambda: _check_values(block_class, x, report))
        return report.result()

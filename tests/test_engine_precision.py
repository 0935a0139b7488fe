"""engine/precision.py: the inference precision a device runs natively, and PSMNet under it."""

import pytest
import torch

from cnnlab.engine.precision import (
    PRECISIONS,
    inference_autocast,
    inference_precision,
    native_precisions,
)
from cnnlab.errors import ConfigError


def test_inference_precision_resolves_auto_and_refuses_emulated_ones():
    from cnnlab.stereo.choices import PRECISIONS as OFFERED  # torch-free, for --help

    assert OFFERED == PRECISIONS  # the engine imports no lab, so it keeps its own list
    cpu = torch.device("cpu")
    native = native_precisions(cpu)
    assert inference_precision("auto", cpu) == ("bf16" if "bf16" in native else "fp32")
    assert inference_precision("fp32", cpu) == "fp32"
    for name in ("bf16", "fp16"):
        if name in native:
            assert inference_precision(name, cpu) == name
        else:
            with pytest.raises(ConfigError, match=rf"precision {name}: cpu on this machine "
                                                  rf"has no native {name}"):
                inference_precision(name, cpu)
    with pytest.raises(ConfigError, match="precision fp64: choose from auto"):
        inference_precision("fp64", cpu)


@pytest.mark.skipif("bf16" not in native_precisions(torch.device("cpu")),
                    reason="no native bf16 on this CPU")
def test_psmnet_in_bf16_keeps_the_soft_argmin_in_fp32(monkeypatch):
    from cnnlab.stereo.models import PSMNet, PSMNetConfig
    from cnnlab.stereo.models import psmnet as module

    torch.manual_seed(0)
    model = PSMNet(PSMNetConfig(max_disparity=16, blocks=(1, 1, 1, 1))).eval()
    left, right = torch.randn(1, 3, 32, 64), torch.randn(1, 3, 32, 64)
    seen = []  # (dtype of the cost, whether autocast is on) where the soft-argmin runs
    regression = module.precise_disparity_regression

    def recorded(cost, *args):
        seen.append((cost.dtype, torch.is_autocast_enabled("cpu")))
        return regression(cost, *args)
    monkeypatch.setattr(module, "precise_disparity_regression", recorded)
    with torch.no_grad(), inference_autocast(torch.device("cpu"), "bf16"):
        low = model(left, right)["disparity"]
    with torch.no_grad():
        full = model(left, right)["disparity"]
    assert seen[0] == (torch.float32, False) and low.dtype == torch.float32
    assert (low - full).abs().mean() < 0.1  # the 3-D stages in bf16, the same answer


def test_training_autocast_on_the_cpu_only_where_bf16_is_native():
    from cnnlab.engine.device import autocast

    cpu = torch.device("cpu")
    native = "bf16" in native_precisions(cpu)
    with autocast(cpu, "bf16"):
        assert torch.is_autocast_enabled("cpu") == native
        if native:
            assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    for amp in ("none", "fp16"):  # CPU fp16 would be emulated: nothing
        with autocast(cpu, amp):
            assert not torch.is_autocast_enabled("cpu")

"""engine/device.py: model preparation (channels_last, DDP, torch.compile)."""

import pytest
import torch

from cnnlab.engine.device import (
    PRECISIONS,
    inference_autocast,
    inference_precision,
    native_precisions,
)
from cnnlab.errors import ConfigError


def test_the_compiled_wrapper_is_unwrapped_for_saving():
    """torch.compile wraps the module (keys gain '_orig_mod.'); checkpoints must hold the plain
    names that eval, predict and --init load (compilation itself is lazy: nothing runs here)."""
    from cnnlab.engine.device import prepare_model, unwrap_model

    network = torch.nn.Sequential(torch.nn.Linear(3, 2))
    model = prepare_model(network, torch.device("cpu"), compile_model=True, channels_last=False)
    assert model is not network and all(k.startswith("_orig_mod.") for k in model.state_dict())
    assert unwrap_model(model) is network and list(network.state_dict()) == ["0.weight", "0.bias"]


@pytest.mark.slow
def test_compiled_training_writes_loadable_checkpoints(tiny_mnist_root, tmp_path):
    """End to end on the CPU (inductor compiles C++ here, ~20 s)."""
    from cnnlab.classify.weights import load_model
    from cnnlab.cli import main

    out = tmp_path / "run"
    assert main(["classify", "train", "--dataset", "mnist", "--model", "mlp", "--epochs", "1",
                 "--compile", "--data-root", str(tiny_mnist_root), "--out", str(out),
                 "--no-progress"]) == 0
    model, card = load_model(str(out))
    assert card.architecture == "mlp" and not any("_orig_mod" in k for k in model.state_dict())


def test_inference_precision_resolves_auto_and_refuses_emulated_ones():
    from cnnlab.cli.stereo import FAST_SCALE as SHOWN
    from cnnlab.cli.stereo import PRECISIONS as OFFERED
    from cnnlab.stereo.evaluate import FAST_SCALE

    assert OFFERED == PRECISIONS and SHOWN == FAST_SCALE
    cpu = torch.device("cpu")
    native = native_precisions(cpu)
    assert inference_precision("auto", cpu) == ("bf16" if "bf16" in native else "fp32")
    assert inference_precision("fp32", cpu) == "fp32"
    for name in ("bf16", "fp16"):
        if name in native:
            assert inference_precision(name, cpu) == name
        else:
            with pytest.raises(ConfigError, match=rf"--precision {name}: cpu on this machine "
                                                  rf"has no native {name}"):
                inference_precision(name, cpu)
    with pytest.raises(ConfigError, match="--precision fp64: choose from auto"):
        inference_precision("fp64", cpu)


@pytest.mark.skipif("bf16" not in native_precisions(torch.device("cpu")),
                    reason="no native bf16 on this CPU")
def test_psmnet_in_bf16_keeps_the_soft_argmin_in_fp32(monkeypatch):
    from cnnlab.stereo.models import PSMNet, PSMNetConfig
    from cnnlab.stereo.models import psmnet as module

    torch.manual_seed(0)
    model = PSMNet(PSMNetConfig(max_disparity=16, blocks=(1, 1, 1, 1))).eval()
    left, right = torch.randn(1, 3, 32, 64), torch.randn(1, 3, 32, 64)
    seen = []
    regression = module.disparity_regression
    monkeypatch.setattr(module, "disparity_regression",
                        lambda cost, *args: seen.append(cost.dtype) or regression(cost, *args))
    with torch.no_grad(), inference_autocast(torch.device("cpu"), "bf16"):
        low = model(left, right)["disparity"]
    with torch.no_grad():
        full = model(left, right)["disparity"]
    assert seen[0] == torch.float32 and low.dtype == torch.float32
    assert (low - full).abs().mean() < 0.1  # the 3-D stages in bf16, the same answer

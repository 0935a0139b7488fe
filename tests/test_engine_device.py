"""engine/device.py: model preparation (channels_last, DDP, torch.compile)."""

import pytest
import torch


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

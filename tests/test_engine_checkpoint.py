"""engine/checkpoint.py: safetensors checkpoints, pickles refused."""

import os

import pytest
import torch
from torch import nn

from cnnlab.engine.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from cnnlab.errors import CheckpointError


def test_checkpoint_roundtrip_with_optimizer(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.randn(5, 3)).sum().backward()
    optimizer.step()
    path = save_checkpoint(tmp_path / "last.safetensors", model.state_dict(),
                           {"epoch": 3, "config": {"a": 1}}, optimizer.state_dict(),
                           {"torch": torch.get_rng_state()})
    assert read_metadata(path)["epoch"] == 3
    assert (tmp_path / "last.json").is_file()
    loaded = load_checkpoint(path)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded["model"][key], value)
    fresh = torch.optim.Adam(model.parameters(), lr=0.5)
    fresh.load_state_dict(loaded["optimizer"])
    assert fresh.param_groups[0]["lr"] == 0.01
    state = fresh.state_dict()["state"][0]
    assert torch.equal(state["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    assert torch.equal(loaded["rng"]["torch"], torch.get_rng_state())
    assert sorted(os.listdir(tmp_path)) == ["last.json", "last.safetensors"]  # no temp files


def test_pickle_checkpoints_are_refused(tmp_path):
    path = tmp_path / "model.safetensors"
    torch.save({"w": torch.zeros(2)}, path)  # a pickle with a misleading name
    with pytest.raises(CheckpointError, match="model.safetensors: not a safetensors"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_weights_of_wrapped_modules_load(tmp_path):
    """Runs with --compile saved '_orig_mod.' keys before the fix (and DDP adds 'module.');
    such files must still load, for eval, predict, --init and --resume."""
    from cnnlab.engine.checkpoint import load_model_weights

    model = nn.Linear(3, 2)
    state = {f"_orig_mod.module.{k}": v + 1 for k, v in model.state_dict().items()}
    fresh = nn.Linear(3, 2)
    load_model_weights(fresh, state, tmp_path / "old.safetensors")
    assert torch.equal(fresh.weight, model.weight + 1)
    with pytest.raises(CheckpointError, match="old.safetensors: weights do not fit"):
        load_model_weights(fresh, {"_orig_mod.weight": model.weight}, tmp_path / "old.safetensors")

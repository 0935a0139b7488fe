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


def test_checkpoints_get_ordinary_permissions(tmp_path):
    """safetensors recreates the file it writes (0o600); a run must stay readable by a TA."""
    old = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "last.safetensors", {"w": torch.ones(2)}, {})
        assert path.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)


def test_a_full_disk_is_reported_as_the_os_error_it_is(tmp_path, monkeypatch):
    import errno

    from safetensors import SafetensorError

    from cnnlab.engine import checkpoint

    save_checkpoint(tmp_path / "last.safetensors", {"w": torch.ones(2)}, {"epoch": 1})

    def full(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device "
                              "(os error 28)")
    monkeypatch.setattr(checkpoint, "save_file", full)
    with pytest.raises(OSError) as info:
        save_checkpoint(tmp_path / "last.safetensors", {"w": torch.zeros(2)}, {"epoch": 2})
    assert info.value.errno == errno.ENOSPC and info.value.filename.endswith("last.safetensors")
    monkeypatch.undo()
    kept = load_checkpoint(tmp_path / "last.safetensors")  # the earlier epoch is intact
    assert kept["metadata"]["epoch"] == 1 and torch.equal(kept["model"]["w"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.json", "last.safetensors"]

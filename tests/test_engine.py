import os
from itertools import pairwise

import pytest
import torch
from torch import nn

from cnnlab.engine.atomic import atomic_write
from cnnlab.engine.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from cnnlab.engine.optim import LRSchedule, build_optimizer
from cnnlab.engine.rundir import RunDir
from cnnlab.errors import CheckpointError, ConfigError


def test_onecycle_shape():
    s = LRSchedule("onecycle", 0.1, total_steps=100, steps_per_epoch=10, pct_start=0.25)
    lrs = [s.lr_at(i) for i in range(100)]
    assert lrs[0] == pytest.approx(0.1 / 25)
    assert max(lrs) == pytest.approx(0.1) and lrs.index(max(lrs)) == 25
    assert lrs[-1] < 1e-3 and all(a >= b for a, b in pairwise(lrs[25:]))


def test_step_and_cosine():
    step = LRSchedule("step", 1.0, 100, 10, milestones=(3, 6), gamma=0.5)
    assert [step.lr_at(e * 10) for e in (0, 2, 3, 5, 6, 9)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    cosine = LRSchedule("cosine", 1.0, 100, 10, warmup_steps=10)
    assert cosine.lr_at(0) == pytest.approx(0.1) and cosine.lr_at(9) == pytest.approx(1.0)
    assert cosine.lr_at(55) == pytest.approx(0.5, abs=0.03)
    with pytest.raises(ConfigError, match="--schedule"):
        LRSchedule("exp", 1.0, 10, 1)


def test_build_optimizer_choices():
    params = [nn.Parameter(torch.zeros(2))]
    for name, cls in (("sgd", torch.optim.SGD), ("adam", torch.optim.Adam),
                      ("adamw", torch.optim.AdamW), ("adadelta", torch.optim.Adadelta)):
        assert isinstance(build_optimizer(params, name, 0.1), cls)
    with pytest.raises(ConfigError, match="--optimizer"):
        build_optimizer(params, "rmsprop", 0.1)
    with pytest.raises(ConfigError, match="--lr"):
        build_optimizer(params, "sgd", 0.0)


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


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")

    def broken(tmp):
        tmp.write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["f.txt"]


def test_rundir_metrics_and_curves(tmp_path):
    run = RunDir(tmp_path)
    rows = [{"epoch": e, "train_loss": 1.0 / e, "train_acc": 0.5 + e / 10, "val_loss": 1.1 / e,
             "val_acc": 0.45 + e / 10, "lr": 0.1, "seconds": 1.5, "images_per_s": 100.0}
            for e in (1, 2, 3)]
    run.write_metrics(rows)
    assert run.read_metrics() == rows
    run.plot_curves(rows, "t")
    assert run.curves_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_shard_indices_cover_everything_for_eval():
    from cnnlab.engine.distributed import DistInfo, shard_indices

    indices = torch.arange(11)
    eval_shares = [shard_indices(indices, DistInfo(r, 3), equal=False) for r in range(3)]
    assert sorted(torch.cat(eval_shares).tolist()) == list(range(11))
    train_shares = [shard_indices(indices, DistInfo(r, 3)) for r in range(3)]
    assert {len(s) for s in train_shares} == {3}
    assert len(set(torch.cat(train_shares).tolist())) == 9


def test_atomic_write_gives_ordinary_permissions(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        target = atomic_write(tmp_path / "new.txt", lambda tmp: tmp.write_text("x"))
        assert target.stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0o600
        assert not list(tmp_path.glob(".*"))  # no temporary file left behind
        target.chmod(0o640)
        atomic_write(target, lambda tmp: tmp.write_text("y"))
        assert target.stat().st_mode & 0o777 == 0o640  # a replaced file keeps its mode
    finally:
        os.umask(old)


def test_compiled_and_ddp_wrappers_are_unwrapped_for_saving():
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

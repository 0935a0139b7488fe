"""The stereo lab's training face: PSMNet with a student's SPP and hourglass (cnnlab's own
classes stand in) trains through cnnlab.stereo.train and writes a checkpoint that names them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.engine.checkpoint import read_metadata
from cnnlab.errors import CheckpointError, ConfigError
from cnnlab.stereo.models.psmnet import Hourglass, SpatialPyramidPooling
from cnnlab.stereo.training.trainer import psmnet, train

SMALL = {"max_disparity": 32, "blocks": (1, 1, 1, 1)}
QUICK = {"crop": (32, 64), "synthetic_size": (64, 128), "samples_per_epoch": 4,
         "val_count": 2, "batch_size": 2, "seed": 0, "log": lambda line: None,
         "progress": False, "live": False}


class StudentSPP(SpatialPyramidPooling):
    """A student's SPP: here cnnlab's, under the student's own class name."""


class StudentHourglass(Hourglass):
    pass


def test_student_parts_train_and_are_named_in_the_checkpoint(tmp_path):
    model = psmnet(spp=StudentSPP, hourglass=StudentHourglass, **SMALL)
    assert isinstance(model.features.spp, StudentSPP)
    assert all(isinstance(h, StudentHourglass) for h in model.hourglasses)
    before = [p.detach().clone() for p in model.parameters()]
    run = train(model, "synthetic", epochs=2, out=tmp_path / "run", **QUICK)
    assert len(run.history) == 2 and "validation EPE" in repr(run)
    assert run.model is model  # the student's network, trained in place
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    card = read_metadata(run.checkpoint)["card"]
    assert card["module"] == (f"PSMNet(spp={__name__}.StudentSPP, "
                              f"hourglass={__name__}.StudentHourglass)")
    assert card["kwargs"]["max_disparity"] == 32 and card["kwargs"]["blocks"] == [1, 1, 1, 1]
    # the command line cannot rebuild the student's parts: one line, not a wrong network
    from cnnlab.stereo.weights.registry import load_model

    with pytest.raises(CheckpointError, match="defined in Python"):
        load_model(run.path)
    # from Python, the same parts rebuild it (an instance or a function giving one alike)
    import cnnlab.stereo as stereo

    with pytest.raises(CheckpointError,
                       match=r"not of PSMNet\(spp=.*StudentSPP\) \(the model given\)"):
        stereo.load(run.path, model=psmnet(spp=StudentSPP, **SMALL))
    loaded = stereo.load(run.path, model=psmnet(spp=StudentSPP, hourglass=StudentHourglass,
                                                **SMALL), precision="fp32", tile="off")
    left = torch.randint(0, 256, (64, 128, 3), dtype=torch.uint8).numpy()
    right = torch.randint(0, 256, (64, 128, 3), dtype=torch.uint8).numpy()
    ours = np.asarray(loaded.predict(left, right))
    reference = stereo.load(run.path, model=lambda: psmnet(
        spp=StudentSPP, hourglass=StudentHourglass, **SMALL), precision="fp32", tile="off")
    assert ours.shape == (64, 128) and np.array_equal(ours, np.asarray(
        reference.predict(left, right)))


def test_a_network_built_under_the_seed_trains_reproducibly(tmp_path):
    """A function giving the network is called under the run's seed: two runs agree exactly,
    whatever the global random state was before."""
    def build():
        return psmnet(spp=StudentSPP, **SMALL)

    torch.manual_seed(1)
    first = train(build, "synthetic", epochs=1, out=tmp_path / "a", **QUICK)
    torch.manual_seed(2)
    second = train(build, "synthetic", epochs=1, out=tmp_path / "b", **QUICK)
    timing = ("seconds", "images_per_s")
    assert ([{k: v for k, v in r.items() if k not in timing} for r in first.history]
            == [{k: v for k, v in r.items() if k not in timing} for r in second.history])
    for a, b in zip(first.model.parameters(), second.model.parameters()):
        assert torch.equal(a, b)


def test_training_keeps_freed_memory_for_its_large_activations(tmp_path, monkeypatch):
    """Stereo training asks glibc to keep freed memory (each 3-D activation would otherwise
    be mapped and page-faulted afresh at every step: 2x the step time measured), before the
    network is built."""
    from cnnlab.stereo.training import lab

    calls = []
    monkeypatch.setattr(lab, "keep_freed_memory", lambda: calls.append("kept") or True)
    # amp "auto" (the default) is what the lab's auto_amp chooses, recorded as chosen
    monkeypatch.setattr(lab.StereoLab, "auto_amp", staticmethod(lambda device: "none"))
    run = train(psmnet(**SMALL), "synthetic", epochs=1, out=tmp_path / "run", **QUICK)
    assert calls == ["kept"]
    assert json.loads((run.path / "config.json").read_text())["optim"]["amp"] == "none"


@pytest.mark.parametrize("device, native, chosen", [
    ("cpu", ("bf16",), "bf16"), ("cpu", ("bf16", "fp16"), "bf16"), ("cpu", (), "none"),
    ("cuda", ("bf16", "fp16"), "none"),  # not checked on CUDA: fp32
])
def test_auto_amp_is_bf16_only_on_a_cpu_that_computes_it(monkeypatch, device, native, chosen):
    from cnnlab.stereo.training import lab

    monkeypatch.setattr(lab, "native_precisions", lambda where: native)
    assert lab.StereoLab.auto_amp(torch.device(device)) == chosen


@pytest.mark.parametrize("call, message", [
    (lambda: psmnet(spp=SpatialPyramidPooling(128, 32, (8,), True)),
     "spp expects your nn.Module class (not an instance), got SpatialPyramidPooling"),
    (lambda: psmnet(max_disparity=20), "max_disparity must be an integer >= 16, a multiple "
                                       "of 16, got 20"),
    (lambda: psmnet(blockz=(1, 1, 1, 1)), "architecture"),
    (lambda: psmnet(hourglass=Hourglass, variant="basic"),
     "hourglass the basic variant has no hourglass"),
    (lambda: train(nn.Linear(2, 2), "synthetic", epochs=1, **QUICK),
     "model expected \"psmnet\" or a network from cnnlab.stereo.psmnet"),
    (lambda: train("psmnet", "synthetic", epochs=1, crop_size=(8, 8), **QUICK),
     "crop_size is not a setting of train(); did you mean crop?"),
])
def test_errors_name_the_argument(call, message):
    with pytest.raises(ConfigError) as caught:
        call()
    assert message in str(caught.value) and "--" not in str(caught.value)


@pytest.mark.slow  # ~20 s: two 64x128 steps of the published network
def test_student_parts_fine_tune_the_official_weights_on_kitti(tmp_path):
    """The lab's task: PSMNet with the student's SPP and hourglass starts from the official
    KITTI 2015 weights (their parameters fit by name), fine-tunes a few steps on real KITTI
    pairs, and writes a checkpoint that loads back with the same parts."""
    from tests.conftest import SHARED_DATA, shared_path, shared_weights

    shared_path("KITTI2015", "training", "image_2")
    weights = shared_weights("PSMNet", "pretrained_model_KITTI2015.tar").parents[1]
    net = psmnet(spp=StudentSPP, hourglass=StudentHourglass)
    run = train(net, "kitti2015", epochs=1, init="psmnet-kitti2015", weights_root=weights,
                data_root=SHARED_DATA, crop=(64, 128), samples_per_epoch=2, batch_size=1,
                val_count=0, lr=1e-4, amp="bf16", seed=0, out=tmp_path / "run",
                log=lambda line: None, progress=False, live=False)
    assert run.history[0]["train_loss"] < 5  # the official weights' loss, not a random net's
    import cnnlab.stereo as stereo

    loaded = stereo.load(run.path, model=psmnet(spp=StudentSPP, hourglass=StudentHourglass))
    assert loaded.card.module.startswith("PSMNet(spp=")


def test_a_resumed_run_continues_with_its_own_settings(tmp_path):
    def build():
        return psmnet(**SMALL)

    train(build, "synthetic", epochs=1, out=tmp_path / "run", amp="none", **QUICK)
    # the default amp ("auto") continues in the run's own precision, whatever auto would pick
    resumed = train(build, "synthetic", epochs=2, out=tmp_path / "run", resume=True, **QUICK)
    assert [row["epoch"] for row in resumed.history] == [1, 2]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["optim"]["amp"] == "none"
    with pytest.raises(ConfigError, match="was trained with other crop;"):
        train(build, "synthetic", epochs=3, out=tmp_path / "run", resume=True,
              **{**QUICK, "crop": (64, 64)})

import json

import numpy as np
import pytest
from PIL import Image
from tests.conftest import shared_path

from cnnlab.cli import main

TINY = ["--max-disparity", "16", "--blocks", "1,1,1,1", "--crop", "32x64", "--synthetic-size",
        "48x80", "--samples-per-epoch", "4", "--val-count", "2", "--batch-size", "2",
        "--no-progress"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("stereo") / "run"
    assert main(["stereo", "train", "--dataset", "synthetic", "--epochs", "2", "--out",
                 str(out), *TINY]) == 0
    return out


def test_train_writes_run_dir(tiny_run):
    for name in ("config.json", "metrics.csv", "curves.png", "last.safetensors",
                 "best.safetensors", "results.json"):
        assert (tiny_run / name).is_file(), name
    results = json.loads((tiny_run / "results.json").read_text())
    assert results["epochs"] == 2 and results["val"]["epe"] > 0
    header = (tiny_run / "metrics.csv").read_text().splitlines()[0]
    assert header.startswith("epoch,train_loss,train_epe,train_d1,val_loss,val_epe,val_d1")


def test_eval_psmnet_and_sgbm(tiny_run, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["stereo", "eval", "--checkpoint", str(tiny_run), "--model", "both",
                 "--dataset", "synthetic", "--count", "2", "--synthetic-size", "48x80",
                 "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "synthetic    psmnet" in table and "synthetic    sgbm" in table
    payload = json.loads(out.read_text())
    assert payload["card"]["architecture"] == "psmnet" and payload["card"]["lab"] == "stereo"
    results = payload["results"]
    sgbm = results["synthetic/sgbm"]
    assert sgbm["images"] == 2 and 0 < sgbm["density"] <= 1
    assert results["synthetic/psmnet"]["density"] == 1.0


def test_predict_writes_every_output(tiny_run, tmp_path, capsys):
    left = shared_path("Middlebury", "tsukuba", "im3.png")
    out = tmp_path / "pred"
    gt = tmp_path / "gt.png"
    from cnnlab.stereo.data.io import read_scaled_disparity, write_kitti_disparity

    disparity, valid = read_scaled_disparity(left.parent / "disp3.pgm", 16.0)
    write_kitti_disparity(gt, disparity, valid)
    assert main(["stereo", "predict", str(left), str(left.parent / "im4.png"), "--checkpoint",
                 str(tiny_run), "--out", str(out), "--focal", "615", "--baseline", "0.1",
                 "--gt", str(gt)]) == 0
    text = capsys.readouterr().out
    assert "Against ground truth: EPE" in text and "Point cloud:" in text
    for suffix in ("_disp.png", "_disp.pfm", "_disp_color.png", "_error.png", "_depth.pfm",
                   ".ply", "_overview.png"):
        assert (out / f"im3{suffix}").is_file(), suffix
    # the overview: left view, disparity with its colour bar, error map with its legend
    from PIL import Image

    with Image.open(out / "im3_overview.png") as overview:
        assert overview.size[1] > overview.size[0]  # three panels stacked


def test_predict_errors_and_notes(tiny_run, tmp_path, capsys):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (60, 90), dtype=np.uint8)
    Image.fromarray(base).save(tmp_path / "grey_l.png")
    Image.fromarray(np.roll(base, -3, axis=1)).save(tmp_path / "grey_r.png")
    Image.fromarray(base[:50]).save(tmp_path / "small.png")
    (tmp_path / "junk.png").write_bytes(b"junk")
    cases = [
        ([str(tmp_path / "grey_l.png"), str(tmp_path / "small.png")], "differs from"),
        ([str(tmp_path / "junk.png"), str(tmp_path / "grey_l.png")], "not a readable image"),
        ([str(tmp_path / "grey_l.png"), str(tmp_path / "grey_r.png"), "--focal", "500"],
         "--focal and --baseline go together"),
        ([str(tmp_path / "grey_l.png"), str(tmp_path / "grey_l.png"), "--checkpoint",
          str(tmp_path)], "no best.safetensors"),
    ]
    for extra, expected in cases:
        args = ["stereo", "predict", *extra]
        if "--checkpoint" not in extra:
            args += ["--checkpoint", str(tiny_run)]
        assert main(args + ["--out", str(tmp_path / "o")]) == 1, extra
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1, err
    assert main(["stereo", "predict", str(tmp_path / "grey_l.png"), str(tmp_path / "grey_r.png"),
                 "--checkpoint", str(tiny_run), "--out", str(tmp_path / "o")]) == 0
    assert "greyscale image" in capsys.readouterr().err


def test_finetune_from_run_dir_and_resume(tiny_run, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "ft"
    assert main(["stereo", "train", "--dataset", "synthetic", "--epochs", "2", "--stop-after",
                 "1", "--init", str(tiny_run), "--out", str(out), *TINY]) == 0
    assert json.loads((out / "last.json").read_text())["epoch"] == 1
    assert main(["stereo", "train", "--resume", str(out), "--epochs", "2", *TINY]) == 0
    assert json.loads((out / "last.json").read_text())["epoch"] == 2
    weights = load_file(str(out / "last.safetensors"))
    assert any(k.startswith("model.features.") for k in weights)
    # a run that is not a stereo run cannot seed fine-tuning
    assert main(["stereo", "train", "--dataset", "synthetic", "--epochs", "1", "--init",
                 str(tmp_path / "none"), "--out", str(tmp_path / "x"), *TINY]) == 1


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    """torchrun with gloo: a DistributedSampler gives each rank its own pairs; validation is
    summed over the ranks (here of unequal shares, 2 and 1 pairs)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(repo))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_port", "29519", "-m", "cnnlab", "stereo", "train", "--dataset",
               "synthetic", "--epochs", "1", "--out", str(out), *TINY, "--val-count", "3"]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("Epoch 1/1") == 1  # only rank 0 logs
    assert "in 3 pairs" in proc.stdout  # both ranks' validation pairs (2 + 1) are counted
    # 4 samples per epoch / (batch 2 x 2 ranks) = 1 step
    assert json.loads((out / "last.json").read_text())["step"] == 1


def test_published_schedule_defaults(tiny_run):
    from cnnlab.stereo.training.lab import published_milestones

    assert published_milestones("kitti2015") == [200] and published_milestones("kitti2012") == [200]
    assert published_milestones("sceneflow") == []
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["optim"]["milestones"] == [] and config["optim"]["optimizer"] == "adam"


def test_align_corners_option_overrides_the_card(tiny_run, tmp_path, capsys):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (40, 72, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "l.png")
    Image.fromarray(np.roll(image, -2, axis=1)).save(tmp_path / "r.png")
    capsys.readouterr()
    args = ["stereo", "predict", str(tmp_path / "l.png"), str(tmp_path / "r.png"),
            "--checkpoint", str(tiny_run), "--out", str(tmp_path / "o")]
    assert main([*args, "--align-corners", "false"]) == 0
    out = capsys.readouterr().out
    assert "align_corners=False (the weights' card says True)" in out
    with pytest.raises(SystemExit):
        main([*args, "--align-corners", "maybe"])
    assert "expected true or false, got 'maybe'" in capsys.readouterr().err


def test_config_reproduces_a_stereo_run_with_other_workers(tiny_run, tmp_path):
    """--config re-runs the recipe; the data pipeline gives the same pairs with 2 workers."""
    again = tmp_path / "again"
    assert main(["stereo", "train", "--config", str(tiny_run), "--workers", "2",
                 "--out", str(again)]) == 0

    def figures(run):
        lines = (run / "metrics.csv").read_text().splitlines()
        return [line.split(",")[:7] for line in lines]  # up to val_d1: no timings

    assert figures(again) == figures(tiny_run)
    saved = json.loads((again / "config.json").read_text())["stereo"]
    assert saved["workers"] == 2 and saved["max_disparity"] == 16 and saved["jitter"] is True


def test_cpu_preset_sets_defaults_that_flags_override(tmp_path):
    out = tmp_path / "preset"
    assert main(["stereo", "train", "--preset", "cpu-small", "--epochs", "1",
                 "--samples-per-epoch", "4", "--synthetic-size", "48x80", "--crop", "32x64",
                 "--val-count", "1", "--no-progress", "--out", str(out)]) == 0
    saved = json.loads((out / "config.json").read_text())
    stereo, optim = saved["stereo"], saved["optim"]
    assert (stereo["max_disparity"], stereo["blocks"], stereo["align_corners"]) == (
        48, [1, 2, 1, 1], False)
    assert optim["schedule"] == "cosine" and optim["batch_size"] == 4
    assert optim["epochs"] == 1 and stereo["crop"] == [32, 64]  # given: the preset yields


def test_a_crop_larger_than_the_pairs_is_pointed_out(tmp_path, capsys):
    """Pairs smaller than the crop are zero-padded (Middlebury's sizes vary), but a crop larger
    than every pair is a slip that costs time: the run says so."""
    from cnnlab.stereo.data.io import write_kitti_disparity

    rng = np.random.default_rng(0)
    for frame in (0, 1):
        name = f"{frame:06d}_10.png"
        image = rng.integers(0, 255, (40, 80, 3), dtype=np.uint8)
        for folder, shown in (("image_2", image), ("image_3", np.roll(image, -2, axis=1))):
            (tmp_path / "kitti/training" / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(shown).save(tmp_path / "kitti/training" / folder / name)
        write_kitti_disparity(tmp_path / "kitti/training/disp_occ_0" / name,
                              np.full((40, 80), 2.0, np.float32))
    args = [a for a in TINY if a not in ("--crop", "32x64", "--synthetic-size", "48x80")]
    assert main(["stereo", "train", "--dataset", "kitti2015", "--data-root",
                 str(tmp_path / "kitti"), "--crop", "48x64", "--epochs", "1", "--val-count",
                 "0", "--out", str(tmp_path / "run"), *args]) == 0
    assert ("note: --crop 48x64 is larger than the smallest kitti2015 pair (40x80)"
            in capsys.readouterr().out)

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from tests.conftest import shared_path

from cnnlab.cli import main
from cnnlab.engine.checkpoint import load_checkpoint
from cnnlab.engine.rundir import RunDir

REPO = Path(__file__).resolve().parents[1]


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def run_cli(*args: str) -> int:
    return main(list(args))


def train_args(root, out, *extra):
    return ["classify", "train", "--dataset", "mnist", "--data-root", str(root), "--out",
            str(out), "--no-progress", *extra]


def test_tiny_training_writes_a_complete_run_dir(tiny_mnist_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(*train_args(tiny_mnist_root, out, "--model", "simple_cnn", "--epochs", "3",
                               "--batch-size", "32", "--lr", "3e-3")) == 0
    text = capsys.readouterr().out
    assert "Validation: loss" in text and "/64 (" in text
    for name in ("config.json", "metrics.csv", "curves.png", "last.safetensors", "last.json",
                 "best.safetensors", "best.json", "results.json"):
        assert (out / name).is_file(), name
    rows = read_rows(out / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert set(rows[0]) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr",
                            "seconds", "images_per_s"}
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    config = json.loads((out / "config.json").read_text())
    assert config["classify"]["model"] == "simple_cnn" and config["optim"]["epochs"] == 3
    assert config["optim"]["amp"] == "none"  # "auto" chose fp32: bf16 not checked here
    # a second train into the same folder is refused rather than overwriting
    assert run_cli(*train_args(tiny_mnist_root, out)) == 1
    assert "already holds a run" in capsys.readouterr().err
    # a run still training there (holding the folder) refuses a --resume as well
    with RunDir(out).lock():
        assert run_cli("classify", "train", "--resume", str(out), "--epochs", "4") == 1
    assert "another cnnlab run is training into it" in capsys.readouterr().err


def test_results_use_the_test_set_also_with_a_carved_validation_split(tiny_mnist_root, tmp_path):
    reused, carved = tmp_path / "reused", tmp_path / "carved"
    assert run_cli(*train_args(tiny_mnist_root, reused, "--model", "mlp", "--epochs", "1")) == 0
    last = read_rows(reused / "metrics.csv")[-1]
    results = json.loads((reused / "results.json").read_text())
    # validated on the test set: the test result is that last validation pass
    assert results["test_count"] == 64
    assert results["test_accuracy"] == pytest.approx(float(last["val_acc"]))
    assert run_cli(*train_args(tiny_mnist_root, carved, "--model", "mlp", "--epochs", "1",
                               "--val-size", "32")) == 0
    assert json.loads((carved / "results.json").read_text())["test_count"] == 64


def test_resume_is_exact(tiny_mnist_root, tmp_path):
    """2 epochs straight == 1 epoch + resume; dropout and augmentation exercise the RNG state."""
    common = ["--model", "mlp", "--batch-size", "32", "--translate", "2", "--optimizer", "adam",
              "--schedule", "cosine", "--lr", "3e-3"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert run_cli(*train_args(tiny_mnist_root, straight, *common, "--epochs", "2")) == 0
    assert run_cli(*train_args(tiny_mnist_root, split, *common, "--epochs", "2",
                               "--stop-after", "1")) == 0
    assert len(read_rows(split / "metrics.csv")) == 1
    # the run's own optimizer, schedule and augmentation are used: no flags need repeating
    assert run_cli("classify", "train", "--resume", str(split), "--no-progress") == 0
    a = load_file(str(straight / "last.safetensors"))
    b = load_file(str(split / "last.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    rows = read_rows(split / "metrics.csv")
    assert len(rows) == 2


def test_sigterm_stops_cleanly_and_the_run_resumes(tiny_mnist_root, tmp_path):
    """A scheduler's SIGTERM mid-run: one line, exit 143, no partial files, checkpoint,
    metrics.csv and best in step, and --resume continues from the last finished epoch."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    command = [sys.executable, "-m", "cnnlab", *train_args(tiny_mnist_root, out, "--model",
               "mlp", "--batch-size", "16", "--epochs", "100000")]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "last.json").is_file() or json.loads(
                (out / "last.json").read_text())["epoch"] < 3:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1] == "cnnlab: terminated (SIGTERM)"
    assert f"continue with cnnlab classify train --resume {out}" in stdout
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no partial files
    epoch = load_checkpoint(out / "last.safetensors")["metadata"]["epoch"]
    assert len(read_rows(out / "metrics.csv")) >= epoch  # a row ahead is redone on resume
    assert run_cli("classify", "train", "--resume", str(out), "--epochs", str(epoch + 1),
                   "--no-progress") == 0
    rows = read_rows(out / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(1, epoch + 2))


def test_eval_and_predict(tiny_mnist_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(*train_args(tiny_mnist_root, out, "--model", "simple_cnn", "--epochs", "4",
                               "--batch-size", "32", "--lr", "3e-3")) == 0
    assert run_cli("classify", "eval", "--checkpoint", str(out), "--data-root",
                   str(tiny_mnist_root)) == 0
    result = json.loads((out / "eval.json").read_text())
    assert result["count"] == 64 and result["accuracy"] > 0.8
    assert np.array(result["confusion_matrix"]).sum() == 64
    assert (out / "confusion.png").is_file()
    # a light-background drawing of class 3's bar is inverted and recognised
    image = np.full((56, 56), 250, np.uint8)
    image[2 * (4 + 6): 2 * (6 + 6), 12:44] = 0
    Image.fromarray(image).save(tmp_path / "three.png")
    Image.fromarray(np.stack([image] * 3, -1)).save(tmp_path / "three.jpg")
    capsys.readouterr()
    assert run_cli("classify", "predict", "--checkpoint", str(out), "--json", "--top-k", "2",
                   str(tmp_path / "three.png"), str(tmp_path / "three.jpg")) == 0
    output = json.loads(capsys.readouterr().out)
    assert output["checkpoint"] == str(out / "best.safetensors") and output["weights"] is None
    predictions = output["predictions"]
    assert [p["top"][0]["class"] for p in predictions] == ["3", "3"]
    assert len(predictions[0]["top"]) == 2
    assert predictions[0]["top"][0]["probability"] >= predictions[0]["top"][1]["probability"]


def test_predict_bad_image(tiny_mnist_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(*train_args(tiny_mnist_root, out, "--model", "mlp", "--epochs", "1")) == 0
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG garbage")
    assert run_cli("classify", "predict", "--checkpoint", str(out), str(bad),
                   str(tmp_path / "missing.png")) == 1
    err = capsys.readouterr().err
    assert "bad.png: not a readable image" in err


@pytest.mark.slow
def test_ddp_two_cpu_processes(tiny_mnist_root, tmp_path):
    """torchrun with gloo: each rank trains on its shard; metrics are summed over ranks."""
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_port", "29517", "-m", "cnnlab", *train_args(
                   tiny_mnist_root, out, "--model", "simple_cnn", "--epochs", "2",
                   "--batch-size", "32", "--lr", "3e-3")]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # validation counts all 64 test images although each rank saw 32
    assert proc.stdout.count("Validation: loss") == 2, proc.stdout
    assert all("/64 (" in line for line in proc.stdout.splitlines() if "Validation" in line)
    assert proc.stdout.count("Epoch 2/2") == 1  # only rank 0 logs
    rows = read_rows(out / "metrics.csv")
    assert len(rows) == 2
    config = json.loads((out / "config.json").read_text())
    assert config["world_size"] == 2
    # each rank: 256 train images / 2 ranks / 32 per batch = 4 steps per epoch -> 8 steps
    assert json.loads((out / "last.json").read_text())["step"] == 8


@pytest.mark.slow
def test_one_epoch_real_mnist_reaches_97_percent(tmp_path):
    root = shared_path("MNIST", "raw").parents[1]
    out = tmp_path / "mnist"
    assert run_cli("classify", "train", "--dataset", "mnist", "--model", "simple_cnn",
                   "--epochs", "1", "--batch-size", "128", "--lr", "3e-3",
                   "--schedule", "onecycle", "--data-root", str(root), "--out", str(out),
                   "--no-progress") == 0
    results = json.loads((out / "results.json").read_text())
    assert results["test_count"] == 10000
    assert results["test_accuracy"] >= 0.97


def test_the_same_command_runs_again_into_a_new_folder(tiny_mnist_root, tmp_path, capsys,
                                                        monkeypatch):
    """Without --out, a rerun goes into runs/NAME-2 (and says so) instead of being refused."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    command = ["classify", "train", "--dataset", "mnist", "--data-root", str(tiny_mnist_root),
               "--model", "mlp", "--epochs", "1", "--batch-size", "64", "--no-progress"]
    assert run_cli(*command) == 0 and run_cli(*command) == 0
    assert "note: runs/mlp-mnist holds a run; this one goes into runs/mlp-mnist-2 (--resume " \
           "runs/mlp-mnist continues that one)" in capsys.readouterr().err
    assert (tmp_path / "runs" / "mlp-mnist" / "last.safetensors").is_file()
    assert (tmp_path / "runs" / "mlp-mnist-2" / "last.safetensors").is_file()

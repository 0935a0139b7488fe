"""Sweeps: the search-space syntax, settings applied to a run, pruning, an interrupted sweep
resumed, stale trials recovered, the report, and `classify sweep` on a tiny dataset."""

import json

import pytest
from tests.conftest import make_tiny_mnist

pytest.importorskip("optuna", reason="the 'sweep' extra (optuna) is not installed")

from cnnlab.classify.training import CLASSIFY, ClassifyConfig
from cnnlab.cli import main
from cnnlab.engine.config import OptimConfig, RunConfig
from cnnlab.engine.sweep import (
    BASELINE,
    apply_params,
    baseline_params,
    check_space,
    open_study,
    parse_param,
    recover_interrupted,
    run_sweep,
)
from cnnlab.engine.sweep_report import findings, spearman, summarize, write_sweep_report
from cnnlab.errors import ConfigError
from cnnlab.stereo.training.lab import StereoConfig

BASE = RunConfig("classify", ClassifyConfig(val_size=64), OptimConfig(epochs=3))
SPACE = [parse_param(t) for t in ("lr=log:1e-4:1e-1", "optimizer=choice:adam,sgd",
                                  "label_smoothing=float:0:0.2")]


def test_parse_param_kinds_and_errors():
    assert parse_param("lr=log:1e-4:1e-1").kind == "log"
    assert parse_param("batch-size=choice:64,128").name == "batch_size"
    assert parse_param("translate=int:0:3").high == 3
    for bad, fragment in (("lr", "expected NAME=KIND"), ("lr=log:0:1", "above 0"),
                          ("lr=float:2:1", "LOW must be below HIGH"),
                          ("x=int:0:1.5", "whole numbers"), ("o=choice:adam", "two or more"),
                          ("lr=gauss:0:1", "KIND one of")):
        with pytest.raises(ConfigError, match=fragment):
            parse_param(bad)


def test_settings_apply_with_their_types():
    run = apply_params(BASE, {"lr": 0.01, "batch_size": "256", "hflip": "true",
                              "label_smoothing": 0.1})
    assert run.optim.lr == 0.01 and run.optim.batch_size == 256
    assert run.task.hflip is True and run.task.label_smoothing == 0.1
    stereo = RunConfig("stereo", StereoConfig(init="psmnet-kitti2015"), OptimConfig())
    applied = apply_params(stereo, {"crop": "128x256", "init": "none", "max_disparity": "96"})
    assert applied.task.crop == (128, 256) and applied.task.init is None
    assert applied.task.max_disparity == 96  # typed by the field, though its default is None
    assert apply_params(stereo, {"align_corners": "false"}).task.align_corners is False


def test_the_space_is_checked_against_the_run():
    with pytest.raises(ConfigError, match="param nope: not a setting of a classify run; "
                                          "choose from .*label_smoothing"):
        check_space([parse_param("nope=float:0:1")], BASE)
    with pytest.raises(ConfigError, match="param epochs: fixed for a sweep"):
        check_space([parse_param("epochs=int:1:3")], BASE)
    with pytest.raises(ConfigError, match="not true or false"):
        check_space([parse_param("hflip=choice:yes,no")], BASE)
    with pytest.raises(ConfigError, match="needs a search space"):
        check_space([], BASE)
    with pytest.raises(ConfigError, match="optimizer must be one of sgd, adam, adamw, "
                                          "adadelta, got 'adamx'"):
        check_space([parse_param("optimizer=choice:adam,adamx")], BASE)
    with pytest.raises(ConfigError, match="optimizer is not a number"):
        check_space([parse_param("optimizer=float:0:1")], BASE)
    with pytest.raises(ConfigError, match="batch_size is a whole number"):
        check_space([parse_param("batch_size=float:16:256")], BASE)
    with pytest.raises(ConfigError, match="batch_size must be an integer >= 1, got 0"):
        check_space([parse_param("batch_size=choice:0,64")], BASE)


def test_the_base_recipe_is_the_first_trial_when_it_lies_in_the_space():
    assert baseline_params(SPACE, BASE) == {"lr": 1e-3, "optimizer": "adam",
                                            "label_smoothing": 0.0}
    assert baseline_params([parse_param("lr=log:1e-2:1e-1")], BASE) is None


def fake_training(curves, interrupt_at=None):
    """A train_run stand-in: trial i reports curves[i % len] epoch by epoch."""
    calls = []

    def train(run, lab, out, device="auto", log=print, progress=False, on_epoch=None,
              trial=False):
        calls.append(run)
        if interrupt_at is not None and len(calls) == interrupt_at:
            raise KeyboardInterrupt
        curve = curves[(len(calls) - 1) % len(curves)]
        best = None
        for epoch, value in enumerate(curve, 1):
            on_epoch({"epoch": epoch, "val_acc": value})
            if best is None or value > best["value"]:
                best = {"epoch": epoch, "metric": "val_acc", "value": value}
        return {"epochs": len(curve), "best": best, "epoch_seconds_total": 1.0,
                "test_accuracy": best["value"] - 0.01}

    return train, calls


def test_poor_trials_are_pruned_and_the_report_says_what_helped(tmp_path):
    good = [0.80, 0.85, 0.90]
    poor = [0.10, 0.11, 0.12]
    train, _ = fake_training([good, good, good, good, poor, poor, poor, good])
    study = run_sweep(BASE, CLASSIFY, SPACE, tmp_path, trials=8, train=train,
                      log=lambda _m: None)
    states = [t.state.name for t in study.trials]
    assert states.count("PRUNED") >= 2 and len(study.trials) == 8
    assert study.trials[0].user_attrs.get(BASELINE) and study.trials[0].params["lr"] == 1e-3
    assert (tmp_path / "study.journal").is_file()
    # amp "auto" is resolved once, into the definition every trial and process shares
    assert study.user_attrs["definition"]["recipe"]["optim"]["amp"] == "none"
    written = write_sweep_report(study, SPACE, tmp_path, "val_acc")
    text = (tmp_path / "report.md").read_text()
    assert "pruned early by the median rule" in text and "Against the base recipe" in text
    assert all(path.is_file() for path in written)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["best"]["value"] == 0.90 and summary["counts"]["pruned"] >= 2
    assert any(line.startswith("optimizer:") for line in findings(summary))


def test_an_interrupted_sweep_resumes_to_its_budget(tmp_path):
    curve = [[0.5, 0.6]]
    train, _ = fake_training(curve, interrupt_at=3)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(BASE, CLASSIFY, SPACE, tmp_path, trials=5, train=train, log=lambda _m: None)
    train, calls = fake_training(curve)
    study = run_sweep(BASE, CLASSIFY, SPACE, tmp_path, trials=5, train=train,
                      log=lambda _m: None)
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 5 and len(calls) == 3  # 2 before the interruption, 3 after
    interrupted = study.trials[2]
    assert interrupted.user_attrs["interrupted"]  # its settings were the first tried again
    assert study.trials[3].params == interrupted.params
    again, calls = fake_training(curve)
    run_sweep(BASE, CLASSIFY, SPACE, tmp_path, trials=5, train=again, log=lambda _m: None)
    assert calls == []  # the budget is met: nothing more runs


def test_an_interrupted_baseline_stays_the_baseline(tmp_path):
    train, _ = fake_training([[0.5]], interrupt_at=1)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(BASE, CLASSIFY, SPACE, tmp_path, trials=2, train=train, log=lambda _m: None)
    train, calls = fake_training([[0.5]])
    study = run_sweep(BASE, CLASSIFY, SPACE, tmp_path, trials=2, train=train,
                      log=lambda _m: None)
    assert study.trials[1].user_attrs[BASELINE] and calls[0].optim.lr == 1e-3
    assert summarize(study, SPACE, "val_acc")["baseline"]["number"] == 1


def test_a_trial_left_running_by_a_killed_process_runs_again(tmp_path):
    study = open_study(tmp_path, "maximize")
    stale = study.ask({p.name: __import__("optuna").distributions.FloatDistribution(
        1e-4, 1e-1, log=True) for p in SPACE[:1]})
    lr = stale.params["lr"]
    messages = []
    assert recover_interrupted(study, messages.append) == 1
    assert study.trials[0].state.name == "FAIL" and "tried again" in messages[0]
    train, calls = fake_training([[0.5]])
    run_sweep(BASE, CLASSIFY, SPACE[:1], tmp_path, trials=1, train=train, log=lambda _m: None)
    assert calls[0].optim.lr == pytest.approx(lr)


def test_spearman_rank_correlation():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([0, 0, 0, 0, 0], [1, 2, 3, 4, 5]) != spearman([0, 0, 0, 0, 0],
                                                                   [1, 2, 3, 4, 5])  # NaN
    assert spearman([1, 1, 2, 2], [1, 2, 3, 4]) == pytest.approx(0.894, abs=1e-3)


def test_a_sweep_folder_keeps_its_recipe(tmp_path):
    train, _ = fake_training([[0.5]])
    run_sweep(BASE, CLASSIFY, SPACE, tmp_path, trials=1, train=train, log=lambda _m: None)
    other = RunConfig("classify", ClassifyConfig(val_size=64), OptimConfig(epochs=5))
    with pytest.raises(ConfigError, match="holds a sweep with another recipe"):
        run_sweep(other, CLASSIFY, SPACE, tmp_path, trials=2, train=train,
                  log=lambda _m: None)


def test_classify_sweep_on_a_tiny_dataset(tmp_path, capsys):
    data = make_tiny_mnist(tmp_path / "data")
    out = tmp_path / "sweep"
    argv = ["classify", "sweep", "--dataset", "mnist", "--data-root", str(data), "--model",
            "mlp", "--epochs", "2", "--val-size", "64", "--batch-size", "64", "--param",
            "lr=log:1e-3:3e-2", "--param", "optimizer=choice:adam,sgd", "--out", str(out)]
    assert main([*argv, "--trials", "2"]) == 0
    text = capsys.readouterr().out
    assert "Trial 0: lr=0.001, optimizer=adam" in text and "Report:" in text
    assert (out / "trial-0000" / "results.json").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["baseline"]["number"] == 0 and "test_accuracy" in summary["best"]["test"]
    assert main([*argv, "--trials", "3"]) == 0  # resumed: one more trial
    assert len(json.loads((out / "summary.json").read_text())["trials"]) == 3
    assert main([*argv, "--trials", "3", "--resume", str(out)]) == 1
    assert "--resume: not for a sweep" in capsys.readouterr().err
    assert main([*argv, "--trials", "3", "--val-size", "0"]) == 1
    assert "--val-size 0: the sweep would choose its settings on the test set" in \
        capsys.readouterr().err


def test_stereo_sweep_on_synthetic_scenes(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["stereo", "sweep", "--max-disparity", "16", "--blocks", "1,1,1,1",
                 "--synthetic-size", "48x80", "--samples-per-epoch", "4", "--val-count", "2",
                 "--batch-size", "2", "--epochs", "1", "--crop", "32x64", "--param",
                 "lr=log:1e-4:1e-2", "--param", "crop=choice:32x64,48x64", "--trials", "2",
                 "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["objective"] == "val_epe" and summary["direction"] == "minimize"
    assert summary["baseline"]["params"] == {"lr": 1e-3, "crop": "32x64"}
    assert json.loads((out / "trial-0001" / "config.json").read_text())["stereo"]["crop"] in (
        [32, 64], [48, 64])

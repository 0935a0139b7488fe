"""engine/config.py and engine/lab.py: one serialiser for every run recipe, --config, resume."""

import json
from dataclasses import dataclass, field

import pytest

from cnnlab.classify.training import CLASSIFY, ClassifyConfig
from cnnlab.cli import main
from cnnlab.engine.config import (
    OptimConfig,
    RunConfig,
    config_from_dict,
    config_to_dict,
    read_config_file,
)
from cnnlab.engine.lab import read_run_config, recipe_of, resumed_config
from cnnlab.errors import ConfigError
from cnnlab.stereo.training.lab import STEREO, StereoConfig


@dataclass
class Inner:
    size: tuple[int, int] = (1, 2)


@dataclass
class Outer:
    name: str = "x"
    ratio: float = 0.5
    counts: tuple[int, ...] = ()
    limit: int | None = None
    options: dict = field(default_factory=dict)
    inner: Inner = field(default_factory=Inner)


def test_round_trip_restores_tuples_and_nested_dataclasses():
    value = Outer("y", 2.0, (3, 4, 5), 7, {"a": [1]}, Inner((8, 9)))
    data = json.loads(json.dumps(config_to_dict(value)))
    assert data["counts"] == [3, 4, 5] and data["inner"] == {"size": [8, 9]}
    assert config_from_dict(Outer, data, "f") == value
    assert config_from_dict(Outer, {"ratio": 1}, "f").ratio == 1.0  # JSON int for a float


@pytest.mark.parametrize("data, message", [
    ({"nmae": "typo"}, "f: unknown setting nmae"),
    ({"limit": "ten"}, "f: limit: expected int, got 'ten'"),
    ({"limit": True}, "f: limit: expected int, got True"),
    ({"inner": {"size": [1, 2, 3]}}, "f: inner: size: expected 2 values"),
    ({"counts": 3}, "f: counts: expected a list"),
    ({"options": []}, "f: options: expected an object"),
])
def test_bad_settings_are_one_line_errors(data, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        config_from_dict(Outer, data, "f")


def test_run_config_keeps_the_files_layout_and_checks_the_lab():
    run = RunConfig("classify", ClassifyConfig(model="mlp", model_kwargs={"width": 3}),
                    OptimConfig(milestones=(2, 4)))
    data = json.loads(json.dumps(run.to_dict()))
    assert set(data) == {"lab", "classify", "optim"} and data["optim"]["milestones"] == [2, 4]
    assert RunConfig.from_dict(data, "classify", ClassifyConfig, "f") == run
    with pytest.raises(ConfigError, match="f: a classify run, not a stereo run"):
        RunConfig.from_dict(data, "stereo", StereoConfig, "f")
    with pytest.raises(ConfigError, match="f: unknown section extra"):
        RunConfig.from_dict({**data, "extra": {}}, "classify", ClassifyConfig, "f")


def test_stereo_configs_of_older_runs_are_upgraded(tmp_path):
    older = {"lab": "stereo", "world_size": 1, "title": "t",
             "stereo": {"dataset": "synthetic", "data_root": None, "crop": [64, 128],
                        "model": {"variant": "basic", "maxdisp": 32, "blocks": [1, 1, 1, 1],
                                  "align_corners": True},
                        "synthetic_max_disparity": None},
             "optim": {"epochs": 2, "milestones": []}}
    (tmp_path / "config.json").write_text(json.dumps(older))
    run = read_run_config(tmp_path, STEREO)
    assert (run.task.variant, run.task.max_disparity, run.task.blocks) == ("basic", 32,
                                                                           (1, 1, 1, 1))
    assert run.task.crop == (64, 128) and run.optim.epochs == 2


def test_resume_changes_only_epochs_and_machine_settings():
    saved = RunConfig("stereo", StereoConfig(data_root="/a", workers=0), OptimConfig(epochs=2))
    resumed = resumed_config(saved, STEREO, 5, {"data_root": "/b", "workers": None})
    assert resumed.optim.epochs == 5 and resumed.task.data_root == "/b"
    assert resumed.task.workers == 0 and saved.optim.epochs == 2
    with pytest.raises(ConfigError, match="crop cannot change"):
        resumed_config(saved, STEREO, None, {"crop": (32, 32)})
    assert "data_root" not in recipe_of(saved, STEREO)["stereo"]
    assert "workers" not in recipe_of(saved, STEREO)["stereo"]
    assert "data_root" not in recipe_of(RunConfig("classify", ClassifyConfig(data_root="/a")),
                                        CLASSIFY)["classify"]


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not a run directory"):
        read_config_file(tmp_path)
    (tmp_path / "config.json").write_text("{oops")
    with pytest.raises(ConfigError, match="not a readable JSON file"):
        read_config_file(tmp_path)


TINY_MNIST = ["--model", "mlp", "--epochs", "1", "--batch-size", "64", "--no-progress"]


def test_train_config_reproduces_a_run_and_flags_override_it(tiny_mnist_root, tmp_path, capsys):
    first, again, changed = tmp_path / "first", tmp_path / "again", tmp_path / "changed"
    assert main(["classify", "train", "--dataset", "mnist", "--data-root", str(tiny_mnist_root),
                 "--translate", "1", "--seed", "5", "--out", str(first), *TINY_MNIST]) == 0
    assert main(["classify", "train", "--config", str(first / "config.json"),
                 "--out", str(again)]) == 0
    assert main(["classify", "train", "--config", str(first), "--seed", "6",
                 "--out", str(changed)]) == 0
    results = [json.loads((run / "results.json").read_text()) for run in (first, again, changed)]
    assert results[1]["test_loss"] == results[0]["test_loss"]
    assert results[2]["test_loss"] != results[0]["test_loss"]
    saved = [json.loads((run / "config.json").read_text()) for run in (first, again, changed)]
    assert saved[1] == saved[0] and saved[2]["optim"]["seed"] == 6
    assert saved[0]["classify"]["data_root"] == str(tiny_mnist_root.resolve())
    capsys.readouterr()
    assert main(["classify", "train", "--config", str(first), "--resume", str(first)]) == 1
    assert "and --resume: use one" in capsys.readouterr().err
    assert main(["stereo", "train", "--config", str(first), "--out", str(tmp_path / "x")]) == 1
    assert "a classify run, not a stereo run" in capsys.readouterr().err

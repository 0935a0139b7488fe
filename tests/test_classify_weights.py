"""Classifier weights shipped in the package: verified, carded, accurate, usable with no data."""

import fnmatch
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tomllib
import torch
from PIL import Image
from safetensors import safe_open
from tests.conftest import shared_path

from cnnlab.classify.card import preprocess_of
from cnnlab.classify.data import TensorSplit
from cnnlab.classify.evaluate import confusion_matrix
from cnnlab.classify.weights import CLASSIFY_WEIGHTS, PACKAGE_DIR, RECIPES, load_model
from cnnlab.cli import main
from cnnlab.data.vision import load_split
from cnnlab.engine.checkpoint import save_checkpoint
from cnnlab.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_the_package_ships_every_registered_file_within_5_mb():
    files = sorted(PACKAGE_DIR.glob("*.safetensors"))
    assert [f.stem for f in files] == sorted(CLASSIFY_WEIGHTS)
    files.append(PACKAGE_DIR / "SHA256SUMS")
    assert sum(f.stat().st_size for f in files) <= 5_000_000
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["cnnlab.classify"]
    for path in files:  # what `pip install` copies next to the code
        relative = path.relative_to(REPO / "src" / "cnnlab" / "classify").as_posix()
        assert any(fnmatch.fnmatch(relative, g) for g in globs), relative
    for name, entry in CLASSIFY_WEIGHTS.items():
        assert entry.sha256, f"{name}: no line in SHA256SUMS"
        entry.verify(entry.packaged)  # the shipped bytes are the ones the manifest names
        with safe_open(str(entry.packaged), "pt") as handle:
            floats = [handle.get_tensor(k) for k in handle.keys()]  # noqa: SIM118
        assert all(t.dtype == torch.float16 for t in floats if t.is_floating_point()), name


@pytest.mark.parametrize("name", list(CLASSIFY_WEIGHTS))
def test_shipped_weights_reach_their_card_accuracy_on_the_real_test_set(name):
    """Each card states the accuracy measured on the full official test set; re-measure it."""
    dataset = RECIPES[name]["classify"]["dataset"]
    root = shared_path("MNIST" if dataset == "mnist" else "FashionMNIST").parent
    model, card = load_model(name)
    assert card.name == name and card.source["verified"].startswith("sha256 ")
    assert card.training["recipe"]["classify"]["model"] == RECIPES[name]["classify"]["model"]
    assert card.training["command"] == f"cnnlab classify weights build {name} --data-root DATA"
    stated = card.metrics[0]["values"]
    images, labels = load_split(dataset, "test", root)
    matrix = confusion_matrix(model, TensorSplit(images, labels, torch.device("cpu")),
                              preprocess_of(card), len(card.outputs["classes"]))
    measured = float(matrix.diag().sum() / matrix.sum())
    assert stated["count"] == len(labels) == 10_000
    assert abs(measured - stated["accuracy"]) <= 0.005, (measured, stated)


def test_predict_with_shipped_weights_needs_no_data_and_no_network(tmp_path):
    images, labels = load_split("mnist", "test", shared_path("MNIST").parent)
    digits = []
    for index in range(3):  # a real digit, enlarged, and one on a white background
        array = images[index, 0].numpy()
        path = tmp_path / f"digit{index}.png"
        Image.fromarray(array).resize((112, 112)).save(path)
        inverted = tmp_path / f"paper{index}.jpg"
        Image.fromarray(255 - array).convert("RGB").save(inverted)
        digits += [(path, int(labels[index])), (inverted, int(labels[index]))]
    empty = tmp_path / "home"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNNLAB_")}
    env.update(HOME=str(empty), XDG_CACHE_HOME=str(empty), PYTHONPATH=str(REPO / "src"),
               no_proxy="*", http_proxy="http://0.0.0.0:9", https_proxy="http://0.0.0.0:9")
    proc = subprocess.run([sys.executable, "-m", "cnnlab", "classify", "predict", "--weights",
                           "simple_cnn-mnist", "--json", *[str(p) for p, _ in digits]],
                          cwd=empty, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    output = json.loads(proc.stdout)
    assert output["weights"] == "simple_cnn-mnist"
    predicted = [p["top"][0]["class"] for p in output["predictions"]]
    assert predicted == [str(label) for _, label in digits]


def test_eval_of_registered_weights_writes_outside_the_package(tmp_path, monkeypatch, capsys):
    root = shared_path("FashionMNIST").parent
    monkeypatch.chdir(tmp_path)
    assert main(["classify", "eval", "--weights", "mlp-fashion-mnist", "--data-root",
                 str(root)]) == 0
    assert "mlp (mlp-fashion-mnist) on fashion-mnist test set" in capsys.readouterr().out
    result = json.loads((tmp_path / "runs" / "eval" / "mlp-fashion-mnist" / "eval.json")
                        .read_text())
    assert result["weights"] == "mlp-fashion-mnist" and result["count"] == 10_000
    assert not list(PACKAGE_DIR.glob("*.json")) and not list(PACKAGE_DIR.glob("*.png"))


def test_checkpoint_written_before_cards_still_loads(tmp_path, tiny_mnist_root):
    model, card = load_model("mlp-mnist")
    legacy = tmp_path / "old" / "best.safetensors"
    config = {"lab": "classify", "classify": {"dataset": "mnist", "model": "mlp",
                                              "model_kwargs": {}, "image_size": None}}
    save_checkpoint(legacy, model.state_dict(), {"config": config, "epoch": 1})
    again, legacy_card = load_model(str(legacy.parent))
    assert legacy_card.architecture == "mlp" and legacy_card.outputs["classes"][3] == "3"
    assert legacy_card.preprocess["mean"] == card.preprocess["mean"]
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(again(x), model(x))


def test_bad_weights_arguments_give_one_line(tmp_path, capsys):
    stereo = tmp_path / "stereo.safetensors"
    card = {"lab": "stereo", "architecture": "psmnet", "kwargs": {}, "preprocess": {},
            "outputs": {}}
    save_checkpoint(stereo, {"w": torch.zeros(1)}, {"card": card})
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(image)
    cases = [
        (["classify", "predict", "--weights", "simple_cnn-mnst", str(image)],
         "unknown classifier weights; choose from simple_cnn-mnist"),
        (["classify", "predict", "--checkpoint", str(stereo), str(image)],
         "holds a stereo model, not a classifier"),
        (["classify", "eval", "--weights", "mlp-mnist", "--dataset", "fashion-mnist"],
         "--dataset fashion-mnist: its classes (T-shirt/top, Trouser, Pullover, ...; "
         "1-channel images) are not those"),
    ]
    for args, expected in cases:
        assert main(args) == 1, args
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1, (args, err)
    with pytest.raises(SystemExit):  # argparse: one of the two sources is required
        main(["classify", "predict", str(image)])


def test_build_reproduces_a_shipped_file_from_its_recipe(tmp_path, tiny_mnist_root, monkeypatch):
    from cnnlab.classify.release import build_weights

    recipe = {"classify": {"dataset": "mnist", "model": "mlp"},
              "optim": {"optimizer": "adam", "lr": 3e-3, "epochs": 2, "batch_size": 32}}
    monkeypatch.setitem(RECIPES, "mlp-mnist", recipe)
    logs = []
    result = build_weights("mlp-mnist", str(tiny_mnist_root), tmp_path / "out",
                           tmp_path / "run", "cpu", logs.append, progress=False)
    path = Path(result["file"])
    assert path == tmp_path / "out" / "mlp-mnist.safetensors" and result["count"] == 64
    assert not path.with_suffix(".json").exists()  # no sidecar beside shipped files
    _, card = load_model(str(path))
    assert card.name == "mlp-mnist" and "data_root" not in card.training
    assert card.training["recipe"]["optim"]["epochs"] == 2
    assert card.metrics[0]["values"]["accuracy"] == result["accuracy"]
    with safe_open(str(path), "pt") as handle:
        assert handle.get_tensor("model.1.weight").dtype == torch.float16
    # a second build resumes the finished run: same weights, same file
    assert (tmp_path / "out" / "SHA256SUMS").read_text() == (
        f"{result['sha256']}  mlp-mnist.safetensors\n")
    again = build_weights("mlp-mnist", str(tiny_mnist_root), tmp_path / "out2",
                          tmp_path / "run", "cpu", logs.append, progress=False)
    assert again["sha256"] == result["sha256"]
    assert any("already trained for 2 epochs" in line for line in logs)
    # a run made with other settings is not passed off as the recipe's
    monkeypatch.setitem(RECIPES, "mlp-mnist", {**recipe, "optim": {**recipe["optim"],
                                                                   "lr": 1e-3}})
    with pytest.raises(ConfigError, match="holds a run with other settings"):
        build_weights("mlp-mnist", str(tiny_mnist_root), tmp_path / "out3", tmp_path / "run",
                      "cpu", logs.append, progress=False)

"""The notebook face of the classification lab (cnnlab.classify): a student's own network
trains, checkpoints, resumes, evaluates, predicts and reloads; errors name the argument."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import cnnlab.classify as classify
from cnnlab.errors import CheckpointError, ConfigError


class LeNet5(nn.Module):
    """The registry's lenet5 written by hand, as a student would (same layers, same order)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
            nn.Conv2d(16, 120, 5), nn.Tanh())
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10))

    def forward(self, x):
        return self.head(self.features(x))


class TinyNet(nn.Module):
    def __init__(self, hidden: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 10))

    def forward(self, x):
        return self.net(x)


QUIET = {"log": lambda line: None, "progress": False, "live": False}
RECIPE = {"batch_size": 32, "lr": 3e-3, "seed": 0}


def _learning(rows):
    """A metrics row without its timings (which differ between any two runs)."""
    return [{k: v for k, v in row.items() if k not in ("seconds", "images_per_s")}
            for row in rows]


def test_own_module_trains_like_the_registry_model(tiny_mnist_root, tmp_path):
    own = classify.train(LeNet5, "mnist", epochs=2, out=tmp_path / "own", image_size=32,
                         data_root=tiny_mnist_root, **RECIPE, **QUIET)
    registry = classify.train("lenet5", "mnist", epochs=2, out=tmp_path / "registry",
                              data_root=tiny_mnist_root, **RECIPE, **QUIET)
    assert len(own.history) == 2
    assert _learning(own.history) == _learning(registry.history)
    assert own.results["test_accuracy"] == registry.results["test_accuracy"]
    assert own.results["test_accuracy"] > 0.5  # it learnt the bars
    card = classify.load(own.path, model=LeNet5).card
    assert (card.architecture, card.module) == ("LeNet5", f"{__name__}.LeNet5")


def test_run_evaluates_predicts_and_reloads(tiny_mnist_root, tmp_path):
    net = TinyNet()
    run = classify.train(net, "mnist", epochs=2, out=tmp_path / "run",
                         data_root=tiny_mnist_root, **RECIPE, **QUIET)
    assert "test accuracy" in repr(run) and run.checkpoint.is_file()
    evaluation = run.evaluate()
    assert evaluation.accuracy == pytest.approx(run.results["test_accuracy"])
    assert evaluation.count == 64 and evaluation.confusion_matrix.sum() == 64
    assert evaluation.confusion()._repr_png_().startswith(b"\x89PNG")
    assert evaluation.mistakes(4)._repr_png_().startswith(b"\x89PNG")
    assert run.curves()._repr_png_().startswith(b"\x89PNG")
    images, _ = classify.dataset("mnist", "test", data_root=tiny_mnist_root, limit=8)
    predicted = run.predict(images)
    assert len(predicted) == 8 and predicted.labels[0] in [str(c) for c in range(10)]
    # the same digits as a file, a PIL image and an (H, W) array agree
    Image.fromarray(images[0, 0].numpy()).save(tmp_path / "digit.png")
    as_file, as_pil, as_array = (run.predict(x).labels[0] for x in (
        tmp_path / "digit.png", Image.fromarray(images[0, 0].numpy()), images[0, 0].numpy()))
    assert as_file == as_pil == as_array == predicted.labels[0]
    # the trained instance is the student's own, and reloads from its class
    assert run.classifier().network is net
    with pytest.raises(CheckpointError, match="pass its class: load"):
        classify.load(run.path)
    with pytest.raises(CheckpointError, match="not of LeNet5"):
        classify.load(run.path, model=LeNet5)
    reloaded = classify.load(run.path, model=TinyNet, which="last")
    assert reloaded.predict(images).labels == predicted.labels
    assert "TinyNet" in repr(reloaded) and "parameters" in repr(reloaded)


def test_own_module_resumes_exactly(tiny_mnist_root, tmp_path):
    straight = classify.train(TinyNet, "mnist", epochs=2, out=tmp_path / "straight",
                              data_root=tiny_mnist_root, **RECIPE, **QUIET)
    classify.train(TinyNet, "mnist", epochs=1, out=tmp_path / "resumed",
                   data_root=tiny_mnist_root, **RECIPE, **QUIET)
    resumed = classify.train(TinyNet, "mnist", epochs=2, out=tmp_path / "resumed",
                             resume=True, data_root=tiny_mnist_root, **RECIPE, **QUIET)
    assert _learning(resumed.history) == _learning(straight.history)
    # resuming with other settings would not continue the run: refused, naming them
    with pytest.raises(ConfigError, match="resume .*resumed was trained with other lr, seed;"):
        classify.train(TinyNet, "mnist", epochs=3, out=tmp_path / "resumed", resume=True,
                       data_root=tiny_mnist_root, **{**RECIPE, "lr": 0.5, "seed": 3}, **QUIET)
    for a, b in zip(straight.classifier().network.parameters(),
                    resumed.classifier().network.parameters()):
        assert torch.equal(a, b)


def test_limit_and_fresh_run_folders(tiny_mnist_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = classify.train(TinyNet, "mnist", epochs=1, limit=64, data_root=tiny_mnist_root,
                           **RECIPE, **QUIET)
    second = classify.train(TinyNet, "mnist", epochs=1, limit=64, data_root=tiny_mnist_root,
                            **RECIPE, **QUIET)
    assert first.path.name == "TinyNet-mnist" and second.path.name == "TinyNet-mnist-2"
    assert first.history[0]["images_per_s"] > 0
    # 64 images in batches of 32: two steps; the epoch saw 64 images, not 256
    with pytest.raises(ConfigError, match="limit must be between 1 and 256"):
        classify.train(TinyNet, "mnist", epochs=1, limit=1000, data_root=tiny_mnist_root,
                       out=tmp_path / "x", **RECIPE, **QUIET)


@pytest.mark.parametrize("call, message", [
    (lambda root: classify.train(TinyNet, "mnist", learning_rate=0.1, data_root=root, **QUIET),
     "learning_rate is not a setting of train(); did you mean lr?"),
    (lambda root: classify.train(TinyNet, "mnist", batchsize=8, data_root=root, **QUIET),
     "batchsize is not a setting of train(); did you mean batch_size?"),
    (lambda root: classify.train(TinyNet, "mnist", epochs=0, data_root=root, **QUIET),
     "epochs must be an integer >= 1, got 0"),
    (lambda root: classify.train(lambda: TinyNet(hidden=7)[0], "mnist", data_root=root, **QUIET),
     "model"),
    (lambda root: classify.train(nn.Linear(10, 10), "mnist", data_root=root, **QUIET),
     "model Linear fails on a batch of shape (1, 1, 28, 28)"),
    (lambda root: classify.train(nn.Sequential(nn.Flatten(), nn.Linear(784, 3)), "mnist",
                                 data_root=root, **QUIET),
     "model Sequential gives (1, 3) for a batch of shape (1, 1, 28, 28); expected (1, 10)"),
    (lambda root: classify.train(42, "mnist", data_root=root, **QUIET),
     "model expected a model name, an nn.Module or its class, got int"),
    (lambda root: classify.train(TinyNet, "mnist", limit=0, data_root=root, **QUIET),
     "limit must be an integer >= 1, got 0"),
    (lambda root: classify.train(TinyNet, "mnist", resume=True, data_root=root, **QUIET),
     "resume needs the run folder"),
    (lambda root: classify.train(TinyNet, "mnist", hflip=True, data_root=root, **QUIET),
     "hflip: horizontal flips change the meaning of mnist labels"),
])
def test_errors_name_the_argument(call, message, tiny_mnist_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises((ConfigError, CheckpointError, TypeError)) as caught:
        call(tiny_mnist_root)
    assert message in str(caught.value)
    assert "--" not in str(caught.value)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.safetensors"))


def test_predict_refuses_what_is_not_an_image(tiny_mnist_root, tmp_path):
    model = classify.load("simple_cnn-mnist")
    for bad, message in ((np.zeros((28, 28), np.float32), "float32 array; give uint8"),
                         (np.zeros((2, 2, 2, 2, 2), np.uint8), "array of shape"),
                         (42, "got int"), ([], "got nothing"),
                         (tmp_path / "nothing.png", "no such file")):
        with pytest.raises(Exception, match=message) as caught:
            model.predict(bad)
        assert caught.type.__module__ == "cnnlab.errors"


def test_transparent_canvas_is_read_on_white():
    """Black ink on a transparent canvas (what a browser saves) is a dark digit on white, not
    an all-black picture."""
    canvas = np.zeros((28, 28, 4), np.uint8)
    canvas[4:24, 12:16, 3] = 255  # opaque black ink: a "1"
    model = classify.load("simple_cnn-mnist")
    assert model.predict(canvas).labels == ["1"]
    flat = canvas.copy()
    flat[..., 3] = 255  # no transparency: all black, no digit to read
    assert model.predict(flat)[0]["top"][0]["probability"] < 0.9


def test_cli_names_flags_where_the_library_names_parameters():
    from cnnlab.cli import build_parser, flag_names

    names = flag_names(build_parser())
    assert ConfigError("must be at least 1", parameter="batch_size").worded(names) == (
        "--batch-size must be at least 1")
    assert ConfigError(": flips", parameter="hflip").worded(names) == "--hflip: flips"
    assert str(ConfigError("must be at least 1", parameter="batch_size")) == (
        "batch_size must be at least 1")


def test_runs_compare_and_evaluate_as_they_were_scored(tiny_mnist_root, tmp_path):
    runs = [classify.train(TinyNet, "mnist", epochs=2, test_limit=32, name=f"net{hidden}",
                           out=tmp_path / f"net{hidden}", data_root=tiny_mnist_root,
                           model_kwargs={}, **RECIPE, **QUIET)
            for hidden in (1, 2)]
    assert runs[0].evaluate().count == 32  # the run's own test_limit, as results were
    assert runs[0].evaluate().accuracy == pytest.approx(runs[0].results["test_accuracy"])
    assert runs[0].evaluate(limit=64).count == 64
    picture = classify.compare(runs, "val_acc")
    assert picture._repr_png_().startswith(b"\x89PNG")
    legend = [t.get_text() for t in picture.figure.axes[0].get_legend().get_texts()]
    assert legend == ["net1", "net2"]
    with pytest.raises(ConfigError, match="metric 'val_epe' is not a column"):
        classify.compare(runs, "val_epe")

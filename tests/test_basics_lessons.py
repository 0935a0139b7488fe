import itertools

import pytest

from cnnlab.basics.lessons import LESSONS, load_iris01
from cnnlab.cli import main


def test_edge_detection_learns_the_kernel():
    result = LESSONS["edge_detection"][0]()
    assert result.summary["final_loss"] < 1e-3 < result.summary["first_loss"]
    assert result.summary["learned_kernel"] == pytest.approx([1.0, -1.0], abs=0.01)


@pytest.mark.parametrize("name", ["linear_regression_manual", "linear_regression_nn"])
def test_linear_regression_recovers_parameters(name):
    summary = LESSONS[name][0]().summary
    assert summary["w"] == pytest.approx([1.0, 2.0, 3.0], abs=0.01)
    assert summary["b"] == pytest.approx(5.0, abs=0.01)


def test_mlp_regression_fits_the_parabola():
    summary = LESSONS["mlp_regression"][0]().summary
    assert summary["final_mse"] < 0.01
    assert summary["f(-2), f(0), f(1.5)"] == pytest.approx([7.0, 3.0, 5.25], abs=0.1)


def test_logistic_regression_and_loss_equivalence():
    features, labels = load_iris01()
    assert features.shape == (100, 4) and labels.sum() == 50
    summary = LESSONS["logistic_regression"][0]().summary
    assert summary["accuracy"] == 1.0
    assert summary["max |BCELoss - BCEWithLogitsLoss|"] < 1e-5


def test_cross_entropy_is_negative_log_probability():
    summary = LESSONS["softmax_cross_entropy"][0]().summary
    assert summary["rows_sum_to_one"] and summary["difference"] < 1e-5


def test_cli_runs_a_lesson_and_writes_its_plot(tmp_path, capsys):
    assert main(["basics", "list"]) == 0
    assert "edge_detection" in capsys.readouterr().out
    assert main(["basics", "run", "edge_detection", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "learned_kernel" in out
    assert (tmp_path / "edge_detection.png").read_bytes()[:4] == b"\x89PNG"
    # an unknown lesson is refused by the parser: see test_cli_errors.py


def test_plots_show_what_each_lesson_teaches(tmp_path):
    """The fit over the data, the decision boundary and the edge maps, not only a loss."""
    from cnnlab.basics.lessons import LESSONS, plot_lesson

    mlp = LESSONS["mlp_regression"][0](steps=200)
    (x, fitted, label), = mlp.panel["lines"]
    assert label == "MLP" and x.min() < -3 < 3 < x.max() and len(fitted) == len(x)
    logistic = LESSONS["logistic_regression"][0](epochs=50)
    assert [p[2] for p in logistic.panel["points"]] == ["setosa (0)", "versicolor (1)"]
    edge = LESSONS["edge_detection"][0]()
    assert [title for _, title in edge.grids][1] == "edges: corr2d(X, [1, -1])"
    for result in (mlp, logistic, edge):
        plot_lesson(result, tmp_path / f"{result.name}.png")
        assert (tmp_path / f"{result.name}.png").read_bytes()[:4] == b"\x89PNG"


def test_transposed_convolution_upsamples_bilinearly_and_shows_the_checkerboard(tmp_path):
    from cnnlab.basics.lessons import bilinear_kernel, plot_lesson

    assert bilinear_kernel(2)[1].tolist() == [0.1875, 0.5625, 0.5625, 0.1875]
    with pytest.raises(ValueError, match="factor"):
        bilinear_kernel(3)
    result = LESSONS["transposed_convolution"][0]()
    summary = result.summary
    assert summary["max |trans_conv2d - F.interpolate| interior"] < 1e-12
    assert summary["max |trans_conv2d - F.interpolate| border"] > 0.1  # zero padding
    for key in ("max |trans_conv2d - F.conv_transpose2d|",
                "max |conv_transpose2d - F.conv_transpose2d|",
                "max |zero insertion + conv - F.conv_transpose2d|"):
        assert summary[key] < 1e-12
    assert summary["constant input, kernel 3 stride 2: variance"] > 0.1
    assert summary["constant input, kernel 3 stride 2: min, max"] == pytest.approx([4 / 9, 16 / 9])
    assert summary["constant input, kernel 4 stride 2: variance"] < 1e-20
    assert result.grids[1][0].shape == (16, 16)
    assert any("stride 1/s" in note for note in result.notes)
    assert any("stride 1/s" in line for line in result.lines())
    plot_lesson(result, tmp_path / "transposed.png")
    assert (tmp_path / "transposed.png").read_bytes()[:4] == b"\x89PNG"


def test_softmax_pooling_moves_from_max_to_mean(tmp_path):
    from cnnlab.basics.lessons import plot_lesson

    result = LESSONS["softmax_pooling"][0](timing_shape=(2, 4, 16, 16), repeats=1)
    summary = result.summary
    positions = summary["position between mean (0) and max (1)"]
    assert positions[0] > 0.99 and positions[-1] < 0.01
    assert all(a > b for a, b in itertools.pairwise(positions))
    assert summary["max |T=1e-4 - max_pool2d|"] < 1e-6
    assert summary["max |T=1e6 - avg_pool2d|"] < 1e-6
    assert summary["inputs given gradient, max_pool2d"] == 0.25
    assert summary["inputs given gradient, softmax_pool2d T=1"] == 1.0
    assert summary["max |pool(2x) - 2 pool(x)|, softmax T=1"] > 0.01
    assert summary["softmax_pool2d / F.max_pool2d"] > 0  # timings vary; the lesson reports them
    assert summary["softmax_pool2d / F.avg_pool2d"] > 0
    assert any("temperature" in note for note in result.notes)
    plot_lesson(result, tmp_path / "softmax.png")
    assert (tmp_path / "softmax.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_lists_the_new_lessons(capsys):
    assert main(["basics", "list"]) == 0
    out = capsys.readouterr().out
    assert "transposed_convolution" in out and "softmax_pooling" in out

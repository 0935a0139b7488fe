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

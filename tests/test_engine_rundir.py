"""engine/rundir.py: metrics.csv and curves.png of a run."""


from cnnlab.engine.rundir import RunDir


def test_rundir_metrics_and_curves(tmp_path):
    run = RunDir(tmp_path)
    rows = [{"epoch": e, "train_loss": 1.0 / e, "train_acc": 0.5 + e / 10, "val_loss": 1.1 / e,
             "val_acc": 0.45 + e / 10, "lr": 0.1, "seconds": 1.5, "images_per_s": 100.0}
            for e in (1, 2, 3)]
    run.write_metrics(rows)
    assert run.read_metrics() == rows
    run.plot_curves(rows, "t")
    assert run.curves_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

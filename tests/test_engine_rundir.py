"""engine/rundir.py: metrics.csv and curves.png of a run, and the lock that keeps two runs out
of one folder."""

from pathlib import Path

import pytest

from cnnlab.engine.rundir import RunDir
from cnnlab.errors import ConfigError


def test_rundir_metrics_and_curves(tmp_path):
    run = RunDir(tmp_path)
    rows = [{"epoch": e, "train_loss": 1.0 / e, "train_acc": 0.5 + e / 10, "val_loss": 1.1 / e,
             "val_acc": 0.45 + e / 10, "lr": 0.1, "seconds": 1.5, "images_per_s": 100.0}
            for e in (1, 2, 3)]
    run.write_metrics(rows)
    assert run.read_metrics() == rows
    run.plot_curves(rows, "t")
    assert run.curves_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_held_run_directory_refuses_a_second_run(tmp_path):
    run = RunDir(tmp_path / "run")
    with run.lock():
        refused = pytest.raises(ConfigError, match=r"out .*run: another cnnlab run is "
                                                   "training into it; wait for it")
        with refused, RunDir(tmp_path / "run").lock():
            pass
        (run.path / "config.json").write_text("{}")
    with RunDir(tmp_path / "run").lock("--resume"):  # released: the next run may take it
        pass
    assert (run.path / "config.json").is_file()


def test_a_folder_the_lock_created_goes_when_nothing_was_written(tmp_path):
    run = RunDir(tmp_path / "new" / "run")
    with pytest.raises(RuntimeError), run.lock():
        raise RuntimeError("the data check failed")
    assert not run.path.exists() and (tmp_path / "new").is_dir()
    existing = RunDir(tmp_path / "existing")
    existing.path.mkdir()
    with existing.lock():
        pass
    assert existing.path.is_dir()  # a folder the user made stays


def test_a_refused_run_leaves_the_holders_new_folder_alone(tmp_path, monkeypatch):
    """The holder created the folder and has not written yet (it may be reading data): the
    run refused meanwhile must not remove it as 'its own empty folder'."""
    holder = RunDir(tmp_path / "fresh")
    with holder.lock():
        # the refused run looked before the holder made the folder: it thinks it made it
        looked = []
        real_exists = Path.exists

        def exists(path):
            if path == holder.path and not looked:
                looked.append(path)
                return False
            return real_exists(path)
        monkeypatch.setattr(Path, "exists", exists)
        with pytest.raises(ConfigError), RunDir(tmp_path / "fresh").lock():
            pass
        monkeypatch.undo()
        assert looked and holder.path.is_dir()
    assert not holder.path.exists()  # the holder wrote nothing: its folder goes with it

"""engine/atomic.py: writes that leave earlier results intact."""

import os

import pytest

from cnnlab.engine.atomic import atomic_write


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")

    def broken(tmp):
        tmp.write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["f.txt"]


def test_atomic_write_gives_ordinary_permissions(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        target = atomic_write(tmp_path / "new.txt", lambda tmp: tmp.write_text("x"))
        assert target.stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0o600
        assert not list(tmp_path.glob(".*"))  # no temporary file left behind
        target.chmod(0o640)
        atomic_write(target, lambda tmp: tmp.write_text("y"))
        assert target.stat().st_mode & 0o777 == 0o640  # a replaced file keeps its mode
    finally:
        os.umask(old)

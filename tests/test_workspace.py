"""cnnlab.setup(): the documented search order, one line per thing, defaults for the session."""

from __future__ import annotations

import os

from tests.conftest import make_tiny_mnist

import cnnlab


def test_setup_finds_a_shared_folder_and_makes_it_the_default(tmp_path, monkeypatch,
                                                               isolated_roots):
    course = tmp_path / "course"
    make_tiny_mnist(course / "shared" / "data")
    (course / "labs").mkdir()
    monkeypatch.chdir(course / "labs")  # a notebook in a folder beside shared/
    lines = []
    found = cnnlab.setup(log=lines.append)
    assert found.data_root == course / "shared" / "data"
    assert found.has("mnist") and not found.has("fashion-mnist")
    assert os.environ["CNNLAB_DATA"] == str(course / "shared" / "data")
    text = lines[0]
    assert "mnist" in text and "(shared folder)" in text
    assert (f"  fashion-mnist        missing: put it in {course / 'shared' / 'data'}/"
            "FashionMNIST/raw, or setup(download=['fashion-mnist'])") in text
    assert "psmnet-kitti2015" in text


def test_setup_prefers_arguments_then_the_environment(tmp_path, monkeypatch, isolated_roots):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "env"))
    assert cnnlab.setup(log=None).data_root == tmp_path / "env"
    given = cnnlab.setup(tmp_path / "given", tmp_path / "w", log=None)
    assert (given.data_root, given.weights_root) == (tmp_path / "given", tmp_path / "w")
    assert "(given)" in repr(given)


def test_setup_downloads_by_name_and_refuses_what_it_cannot(tmp_path, monkeypatch, isolated_roots):
    import pytest

    from cnnlab.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="download mnst: not something setup finds"):
        cnnlab.setup(tmp_path, tmp_path, download=["mnst"], log=None)
    with pytest.raises(ConfigError, match="download kitti2015: cannot be downloaded"):
        cnnlab.setup(tmp_path, tmp_path, download="kitti2015", log=None)
    lines = repr(cnnlab.setup(tmp_path, tmp_path, log=None))
    assert "setup(download=['mnist'])" in lines and "drive.google" not in lines

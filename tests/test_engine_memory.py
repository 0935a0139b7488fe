"""Process memory settings: when training reruns itself under tcmalloc, and that it does."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from cnnlab.cli.stereo import train as train_cli
from cnnlab.engine import memory
from cnnlab.errors import ConfigError

LIBRARY = "/opt/lib/libtcmalloc_minimal.so.4"


def test_the_rerun_environment_preloads_tcmalloc_once():
    env = memory.tcmalloc_environment({"PATH": "/bin", "LD_PRELOAD": "libother.so"}, LIBRARY)
    if env is None:  # not glibc Linux: never rerun
        assert not sys.platform.startswith("linux")
        return
    assert env["LD_PRELOAD"] == f"{LIBRARY} libother.so" and env["PATH"] == "/bin"
    assert int(env["TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD"]) >= 2 ** 40  # no report lines
    assert memory.tcmalloc_environment(env, LIBRARY) is None  # the rerun does not rerun
    for chosen in ("/x/libtcmalloc.so.4", "/x/libjemalloc.so.2", "a.so:/y/libmimalloc.so"):
        assert memory.tcmalloc_environment({"LD_PRELOAD": chosen}, LIBRARY) is None  # theirs
    # a path that merely contains an allocator's name is not one
    assert memory.tcmalloc_environment({"LD_PRELOAD": "/opt/tcmalloc-test/libz.so"}, LIBRARY)


@pytest.mark.parametrize("environ, library", [
    ({"CNNLAB_ALLOCATOR": "system"}, LIBRARY),  # the user's choice
    ({}, None),  # none installed
])
def test_no_rerun_where_it_does_not_apply(environ, library):
    assert memory.tcmalloc_environment(environ, library) is None


def test_a_bad_allocator_choice_is_refused_by_name():
    with pytest.raises(ConfigError, match=r"CNNLAB_ALLOCATOR='tc'.*auto, system"):
        memory.tcmalloc_environment({"CNNLAB_ALLOCATOR": "tc"}, LIBRARY)


def test_find_tcmalloc_looks_in_the_folders_given(tmp_path):
    assert memory.find_tcmalloc((str(tmp_path),)) is None
    (tmp_path / "libtcmalloc.so.4").write_bytes(b"")
    assert memory.find_tcmalloc((str(tmp_path),)) == str(tmp_path / "libtcmalloc.so.4")


def test_only_the_command_line_reruns_its_process(monkeypatch):
    """``main()`` from Python (a notebook, a script, a test), with or without arguments,
    never replaces its process; the ``cnnlab`` command (``command_line``) may."""
    from cnnlab import cli

    seen = []
    monkeypatch.setattr(train_cli, "cmd_train", lambda args: seen.append(args.whole_process))
    monkeypatch.setattr(sys, "argv", ["cnnlab", "stereo", "train"])
    cli.main(["stereo", "train"])
    cli.main()
    with pytest.raises(SystemExit):
        cli.command_line()
    assert seen == [False, False, True]
    calls = []
    monkeypatch.setattr(memory, "rerun_under_tcmalloc", lambda: calls.append(1))
    train_cli._rerun_under_tcmalloc(argparse.Namespace(whole_process=False))
    assert calls == []
    train_cli._rerun_under_tcmalloc(argparse.Namespace(whole_process=True))
    assert calls == [1]


@pytest.mark.skipif(memory.find_tcmalloc() is None, reason="tcmalloc is not installed "
                    "(apt install libtcmalloc-minimal4)")
@pytest.mark.skipif(memory.tcmalloc_environment({}, LIBRARY) is None, reason="not glibc Linux")
def test_the_rerun_runs_the_same_command_under_tcmalloc():
    code = ("import os, sys\n"
            "from cnnlab.engine.memory import rerun_under_tcmalloc\n"
            "print('before', flush=True)\n"
            "rerun_under_tcmalloc()\n"
            "print(sys.argv[1:], 'tcmalloc' in open('/proc/self/maps').read())\n")
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("LD_PRELOAD", "CNNLAB_ALLOCATOR", "CNNLAB_ALLOCATOR_RERUN")}
    out = subprocess.run([sys.executable, "-c", code, "an", "argument"], env=env,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.splitlines() == ["before", "before", "['an', 'argument'] True"]

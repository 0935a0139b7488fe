"""Reliability round 3, classes 7 and 9 (issue 20): student code that never returns, raises,
exits, prints without end or asks for absurd memory gets a one-line verdict within the time
limit; missing files and folders given relative are named as given and as resolved.

Table-driven: API rows call the checkers (and cnnlab's readers) directly, CLI rows run
`cnnlab ...` through ``main``; add a row for a new case.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch
from tests.test_cli_errors import _run, places  # noqa: F401  (places is a fixture)
from torch import nn

from cnnlab.errors import CnnlabError, ConfigError
from cnnlab.exercises import (
    check_corr2d,
    check_files,
    check_hourglass,
    check_pool2d,
    check_residual_block,
    check_spp,
)
from cnnlab.exercises.batch import EXERCISES

LIMIT = 1  # s: every row must end well within a few of these
SLACK = 6  # s allowed beyond the limit (the checker's own work, a loaded machine)


# ------------------------------------------------------------------ student code, as written


def corr2d_loops(X, K):
    while True:
        pass


def corr2d_sleeps(X, K):
    time.sleep(1000)


def corr2d_swallows(X, K):  # catches every stop, and loops again
    while True:
        try:
            while True:
                pass
        except BaseException:
            pass


def corr2d_exits(X, K):
    raise SystemExit(3)


def corr2d_absurd_memory(X, K):
    raise MemoryError()


def corr2d_wrong_type(X, K):
    return "a string"


def corr2d_prints(X, K):
    while True:
        print("step" * 20)


def pool2d_loops_on_avg(X, pool_size, mode="max"):
    while mode == "avg":
        pass
    return torch.zeros(X.shape[0] - pool_size[0] + 1, X.shape[1] - pool_size[1] + 1)


class ResidualBuildsForever(nn.Module):
    def __init__(self, input_channels, num_channels, use_1x1conv=False, strides=1):
        super().__init__()
        while True:
            pass


class SPPForwardForever(nn.Module):
    def __init__(self, channels, branch_channels, pools, align_corners):
        super().__init__()
        self.conv = nn.Conv2d(channels, branch_channels, 1)

    def forward(self, x):
        while True:
            x = x + 0


class HourglassForwardForever(nn.Module):
    def __init__(self, channels):
        super().__init__()

    def forward(self, x, presqu, postsqu):
        while True:
            pass


# (id, checker call, fragments of the failure message)
NEVER_RETURNS = "did not return within 1 s: look for a loop that never ends"
API_ROWS = [
    ("forward loops", lambda: check_corr2d(corr2d_loops, time_limit=LIMIT),
     ["corr2d(X (5, 6), K (2, 3))", NEVER_RETURNS, "`time_limit`"]),
    ("sleeps", lambda: check_corr2d(corr2d_sleeps, time_limit=LIMIT), [NEVER_RETURNS]),
    ("loops in one mode only", lambda: check_pool2d(pool2d_loops_on_avg, time_limit=LIMIT),
     ["mode='avg'", NEVER_RETURNS]),
    ("constructor loops", lambda: check_residual_block(ResidualBuildsForever, time_limit=LIMIT),
     ["ResidualBuildsForever(3, 3, use_1x1conv=False, strides=1)", NEVER_RETURNS]),
    ("SPP forward loops", lambda: check_spp(SPPForwardForever, drop_in=False,
                                            time_limit=LIMIT),
     ["on x (1, 128, 24, 80)", NEVER_RETURNS]),
    ("hourglass forward loops", lambda: check_hourglass(HourglassForwardForever,
                                                        drop_in=False, time_limit=LIMIT),
     ["HourglassForwardForever(32)(x (1, 32, 12, 16, 32), None, None)", NEVER_RETURNS]),
    ("calls exit", lambda: check_corr2d(corr2d_exits, time_limit=LIMIT),
     ["called exit(3)", "must return its result"]),
    ("absurd memory", lambda: check_corr2d(corr2d_absurd_memory, time_limit=LIMIT),
     ["raised MemoryError", "more memory than it may use"]),
    ("wrong type", lambda: check_corr2d(corr2d_wrong_type, time_limit=LIMIT),
     ["returned a str, expected a tensor"]),
]


@pytest.mark.parametrize("check, fragments", [r[1:] for r in API_ROWS],
                         ids=[r[0] for r in API_ROWS])
def test_student_code_gets_a_verdict_within_the_limit(check, fragments):
    start = time.monotonic()
    result = check()
    assert time.monotonic() - start < LIMIT + SLACK
    assert not result.passed
    assert "\n" not in result.message
    for fragment in fragments:
        assert fragment in result.message


def test_a_loop_is_stopped_off_the_main_thread_too():
    found = {}

    def work():
        found["result"] = check_corr2d(corr2d_loops, time_limit=LIMIT)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(LIMIT + SLACK)
    assert not thread.is_alive(), "the checker did not return"
    assert NEVER_RETURNS in found["result"].message


def test_the_checks_after_a_timeout_are_skipped():
    from tests.test_exercises import SPP

    class SPPLoopsLater(SPP):  # right, until it is built a second time (the values step)
        built = 0

        def __init__(self, *args):
            super().__init__(*args)
            SPPLoopsLater.built += 1
            self.number = SPPLoopsLater.built

        def forward(self, x):
            while self.number > 1:
                pass
            return super().forward(x)

    start = time.monotonic()
    result = check_spp(SPPLoopsLater, time_limit=LIMIT)  # the drop-in would wait again
    assert time.monotonic() - start < LIMIT + SLACK
    assert "skipped: the remaining checks: a call above did not return in time" in result.steps


def test_endless_printing_is_cut_and_counted(capsys):
    result = check_corr2d(corr2d_prints, time_limit=LIMIT)
    out = capsys.readouterr().out
    assert NEVER_RETURNS in result.message
    assert len(out) < 5000
    assert "[check_corr2d: your code printed" in out and "not shown]" in out


def test_no_alarm_is_left_behind():
    import signal

    check_corr2d(corr2d_loops, time_limit=LIMIT)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None, 0)


@pytest.mark.parametrize("value", [-1, float("nan"), float("inf"), "60", True])
def test_a_bad_time_limit_is_refused_naming_it(value):
    with pytest.raises(ConfigError, match=r"^time_limit must be"):
        check_corr2d(corr2d_loops, time_limit=value)


# ------------------------------------------------------------- the TA's batch, in children


@pytest.fixture(scope="module")
def students(tmp_path_factory):
    folder = tmp_path_factory.mktemp("students")
    (folder / "loops.py").write_text("def corr2d(X, K):\n    while True:\n        pass\n")
    (folder / "top_level_loops.py").write_text("while True:\n    pass\n")
    (folder / "nothing.py").write_text("x = 1\n")
    (folder / "swallows.py").write_text(
        "def corr2d(X, K):\n    while True:\n        try:\n            while True:\n"
        "                pass\n        except BaseException:\n            pass\n")
    (folder / "notebook.ipynb").write_text("{}")
    return folder


def test_check_files_reports_each_file_in_one_line(students):
    start = time.monotonic()
    results = check_files([students / "loops.py", students / "top_level_loops.py",
                           students / "nothing.py"], time_limit=LIMIT)
    assert time.monotonic() - start < 3 * (LIMIT + 15)  # three children, torch each
    lines = [line for result in results for line in result.lines()]
    assert len(lines) == 3 and not any(result.passed for result in results)
    assert "loops.py: check_corr2d: FAILED - corr2d(X (5, 6), K (2, 3)) " + NEVER_RETURNS \
        in lines[0]
    assert "running top_level_loops.py's top-level code " + NEVER_RETURNS in lines[1]
    assert "defines none of the exercises' names" in lines[2]


def test_a_file_that_swallows_every_stop_is_killed_with_its_process(students, monkeypatch):
    from cnnlab.exercises import batch

    monkeypatch.setattr(batch, "STARTUP", 12.0)  # the wall limit: 4 x 1 s + 12 s
    start = time.monotonic()
    [result] = check_files([students / "swallows.py"], time_limit=LIMIT)
    assert time.monotonic() - start < 4 * LIMIT + 12 + SLACK
    assert result.error is not None and result.error.startswith("stopped after 16 s in all")


# A file written to forge "passed" (issue review): the verdict comes only from cnnlab's own
# checker, bound before the file runs, over a channel the file is not told of.
FORGED = ('{"results": [{"name": "check_corr2d", "passed": true, "message": "all checks '
          'passed", "text": "check_corr2d: passed"}]}')
FORGERIES = [  # (id, the student's file, fragment of its line)
    ("writes the result file and exits",
     "import os, sys\n"
     "for path in ['../result.json', *[a for a in sys.argv if a.endswith('.json')]]:\n"
     "    with open(path, 'w') as f:\n"
     f"        f.write({FORGED!r})\n"
     "os._exit(0)\n",
     "its process exited with code 0 before any result"),
    ("replaces the checker",
     "import cnnlab.exercises\n"
     "class R:\n"
     "    name, passed, message = 'check_corr2d', True, 'all checks passed'\n"
     "    def __str__(self):\n"
     "        return 'check_corr2d: passed'\n"
     "cnnlab.exercises.check_corr2d = lambda *a, **k: R()\n"
     "def corr2d(X, K):\n"
     "    return X\n",
     "check_corr2d: FAILED"),
    ("writes a result to every open file descriptor",
     "import os\nfor fd in range(3, 256):\n    try:\n"
     f"        os.write(fd, {FORGED!r}.encode())\n"
     "    except OSError:\n        pass\n"
     "def corr2d(X, K):\n    return X[:-1, :-2]\n",
     "its process sent a result that its checker did not write"),
    ("prints a result on stdout and exits",
     f"import os\nprint({FORGED!r}, flush=True)\nos._exit(0)\n",
     "its process exited with code 0 before any result"),
]


@pytest.mark.parametrize("source, fragment", [r[1:] for r in FORGERIES],
                         ids=[r[0] for r in FORGERIES])
def test_a_file_cannot_forge_passed(source, fragment, tmp_path):
    (tmp_path / "forge.py").write_text(source)
    [result] = check_files([tmp_path / "forge.py"], exercise="corr2d", time_limit=10)
    assert not result.passed, result.lines()
    assert fragment in " ".join(result.lines()), result.lines()


CLI_ROWS = [  # (id, argv, exit code, fragment of stderr)
    ("missing student file", ["exercises", "check", "{tmp}/none.py"], 1,
     "none.py: no such file"),
    ("a notebook", ["exercises", "check", "{students}/notebook.ipynb"], 1, "nbconvert"),
    ("unknown exercise", ["exercises", "check", "{students}/nothing.py", "--exercise", "nope"],
     1, "--exercise must be one of corr2d"),
    ("memory limit too low", ["exercises", "check", "{students}/nothing.py",
                              "--memory-limit", "0.1"], 1, "--memory-limit must be at least"),
    ("time limit negative", ["exercises", "check", "{students}/nothing.py", "--time-limit",
                             "-1"], 2, "argument --time-limit"),
]


@pytest.mark.parametrize("argv, code, fragment", [r[1:] for r in CLI_ROWS],
                         ids=[r[0] for r in CLI_ROWS])
def test_exercises_check_refuses_in_one_line(argv, code, fragment, places, students,  # noqa: F811
                                             capsys):
    argv = [a.replace("{students}", str(students)) for a in argv]
    if code == 2:
        with pytest.raises(SystemExit) as exit_:
            _run(argv, places, capsys)
        assert exit_.value.code == 2
        err = capsys.readouterr().err.strip()
    else:
        got, err = _run(argv, places, capsys)
        assert got == code
    assert len(err.splitlines()) == 1 and fragment in err


def test_exercises_check_cli_output(students, capsys):
    from cnnlab.cli import main

    assert main(["exercises", "check", str(students / "loops.py"), "--time-limit", "1"]) == 1
    out = capsys.readouterr().out
    assert NEVER_RETURNS in out and "pass a larger --time-limit" in out


def test_the_cli_names_every_exercise_the_library_knows():
    from cnnlab.cli.exercises import EXERCISE_NAMES

    assert tuple(EXERCISES) == EXERCISE_NAMES


# ---------------------------------------------------- class 9: relative paths named in full

RELATIVE_CLI = [  # (id, argv run from {tmp}/sub, fragment: the path as given and resolved)
    ("stereo eval data root", ["stereo", "eval", "--model", "sgbm", "--dataset", "kitti2015",
                               "--data-root", "../nodata"],
     "missing folder ../nodata/training ({tmp}/nodata/training)"),
    ("middlebury data root", ["stereo", "eval", "--model", "sgbm", "--dataset", "middlebury",
                              "--data-root", "../nodata"],
     "missing folder ../nodata ({tmp}/nodata)"),
    ("predict image", ["classify", "predict", "--weights", "mlp-mnist", "../none.png"],
     "../none.png ({tmp}/none.png): no such file"),
    ("eval checkpoint", ["classify", "eval", "--checkpoint", "../norun"],
     "../norun ({tmp}/norun): no such run directory"),
    ("student file", ["exercises", "check", "../none.py"], "../none.py ({tmp}/none.py)"),
]


@pytest.mark.parametrize("argv, fragment", [r[1:] for r in RELATIVE_CLI],
                         ids=[r[0] for r in RELATIVE_CLI])
def test_a_missing_relative_path_is_named_as_given_and_resolved(argv, fragment, tmp_path,
                                                                monkeypatch, capsys):
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    code, err = _run(argv, {}, capsys)
    assert code == 1
    assert fragment.format(tmp=tmp_path) in err


def _api_kitti():
    import cnnlab.stereo as stereo

    stereo.evaluate("sgbm", "kitti2015", data_root="../nodata")


def _api_checkpoint():
    import cnnlab.classify as classify

    classify.load("../norun")


def _api_check_files():
    check_files(["../none.py"])


RELATIVE_API = [
    ("stereo.evaluate data_root", _api_kitti,
     "missing folder ../nodata/training ({tmp}/nodata/training)"),
    ("classify.load", _api_checkpoint, "../norun ({tmp}/norun)"),
    ("check_files", _api_check_files, "../none.py ({tmp}/none.py): no such file"),
]


@pytest.mark.parametrize("call, fragment", [r[1:] for r in RELATIVE_API],
                         ids=[r[0] for r in RELATIVE_API])
def test_the_api_names_a_relative_path_as_the_cli_does(call, fragment, tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    with pytest.raises(CnnlabError) as error:
        call()
    assert fragment.format(tmp=tmp_path) in str(error.value)
    assert "\n" not in str(error.value)


def test_an_absolute_path_is_shown_once():
    from cnnlab.errors import shown_path

    assert shown_path("/data/x") == "/data/x"
    assert shown_path(Path("rel")) == f"rel ({Path.cwd() / 'rel'})"

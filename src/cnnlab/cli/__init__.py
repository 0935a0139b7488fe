"""Command line: parses arguments, calls library functions, prints. No logic worth testing.

One module per lab (``classify``, ``stereo``, ``basics``) adds its commands; ``common`` holds
what they share.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import threading

from cnnlab import __version__
from cnnlab.cli import basics, classify, exercises, stereo
from cnnlab.cli.common import Parser, apply_config
from cnnlab.errors import CnnlabError

DESCRIPTION = """\
cnnlab: classic deep-learning vision labs as tested software.
  classify  MNIST / Fashion-MNIST / CIFAR-10 with the classic networks; shipped weights
  stereo    PSMNet stereo matching (KITTI, SceneFlow, Middlebury, synthetic); SGBM baseline
  basics    from-scratch convolution and pooling, autograd lessons
  exercises check students' exercise files, each in a process of its own
Run `cnnlab LAB --help` and `cnnlab LAB COMMAND --help` for the options and their defaults."""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="cnnlab", description=DESCRIPTION,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}",
                        help="print cnnlab's version and exit")
    parser.add_argument("--debug", action="store_true",
                        help="on an unexpected error, show the Python traceback (may also be "
                             "given after the command)")
    sub = parser.add_subparsers(dest="lab", required=True, metavar="LAB")
    classify.add_parser(sub)
    basics.add_parser(sub)
    stereo.add_parser(sub)
    exercises.add_parser(sub)
    return parser


# library parameters set by a flag of another name
PARAMETER_FLAGS = {"name_or_path": "--checkpoint", "calibration": "--calib"}


def flag_names(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each library parameter -> the flag that sets it (its argparse dest; flags sharing one
    joined, as --scale/--fast), over every command: the one place where an error about a
    parameter becomes one about a flag."""
    names: dict[str, str] = {}
    shared: dict[str, list[str]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                for dest, flag in flag_names(sub).items():
                    names.setdefault(dest, flag)
        elif action.option_strings:
            longs = [o for o in action.option_strings
                     if o.startswith("--") and not o.startswith("--no-")]
            shared.setdefault(action.dest, []).append((longs or action.option_strings)[0])
    names.update({dest: "/".join(flags) for dest, flags in shared.items()})
    return {**PARAMETER_FLAGS, **names}


def _out_of_memory(exc: BaseException) -> bool:
    """CPU allocator failure, CUDA/MPS out of memory, or Python's MemoryError."""
    text = str(exc)
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and (
        "can't allocate memory" in text or "out of memory" in text.lower()))


def _memory_hint(args: argparse.Namespace) -> str:
    """What to lower, for the command that ran out of memory."""
    if getattr(args, "action", None) == "train":
        if getattr(args, "resume", None):  # its batch size is the run's, and cannot change
            return (": this run's batch does not fit this machine's memory; resume it on a "
                    "machine with more, or start a new run with a smaller --batch-size (the "
                    "finished epochs are kept)")
        batch = getattr(args, "batch_size", None)
        crop = "or --crop " if args.lab == "stereo" else ""
        return (f" at --batch-size {batch}: lower it {crop}(the run's finished epochs are "
                "kept)")
    if args.lab == "stereo":
        return (": the images are too large for this machine's memory; run the network on "
                "tiles (--tile HxW, or a lower --max-memory) or downscaled (--scale 0.5, or "
                "--fast)")
    return "; try fewer or smaller inputs"


def _os_error(exc: OSError) -> str:
    """One line for a failed file operation: the file, then what went wrong."""
    where = exc.filename or ""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        reason += " (earlier results are left intact)"
    return f"{where}: {reason}" if where else reason


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's time limit, `kill`, torchrun stopping its workers) as an
    exception, so that partial files are removed and the last checkpoint stays usable."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: list[str] | None = None, *, whole_process: bool = False) -> int:
    """Run one command (``argv``, default the process's arguments); returns its exit code.
    ``whole_process``: this process is the command (``command_line``), so a command may
    replace it by a rerun under another allocator; never for a call from Python."""
    if threading.current_thread() is not threading.main_thread():
        return _main(argv, whole_process)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _main(argv, whole_process)
    finally:
        signal.signal(signal.SIGTERM, previous)


def command_line() -> None:
    """The ``cnnlab`` command and ``python -m cnnlab(.cli)``: the process is the command."""
    sys.exit(main(whole_process=True))


def _main(argv: list[str] | None, whole_process: bool) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("CNNLAB_DEBUG") == "1"
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = debug or args.debug  # an abbreviation before the command (--deb) counts too
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # epoch lines reach log files as they happen
    try:
        if getattr(args, "config", None) or getattr(args, "preset", None):
            args = apply_config(parser, args, argv)
        args.whole_process = whole_process  # may a command rerun its process (memory)
        return args.func(args)
    except CnnlabError as exc:
        print(f"cnnlab: error: {exc.worded(flag_names(parser))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        stopped = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(f"cnnlab: {stopped}", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:  # a file cnnlab writes or reads: permissions, full disk, a folder
        if debug:
            raise
        print(f"cnnlab: error: {_os_error(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # last resort: one line, the traceback on request
        if debug:
            raise
        if _out_of_memory(exc):
            print(f"cnnlab: error: out of memory{_memory_hint(args)}", file=sys.stderr)
            return 1
        text = str(exc).strip().splitlines()
        detail = f": {text[0][:300]}" if text else ""
        print(f"cnnlab: error: unexpected {type(exc).__name__}{detail} (rerun with --debug "
              "for the traceback, and please report it)", file=sys.stderr)
        return 1

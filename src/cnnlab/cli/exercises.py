"""``cnnlab exercises check``: a TA's batch of students' files, each in a process of its own."""

from __future__ import annotations

import sys

from cnnlab.cli.common import absolute, number

# the library's EXERCISES keys, written out so that --help imports no torch (a test compares)
EXERCISE_NAMES = ("corr2d", "pool2d", "residual", "spp", "hourglass")


def cmd_check(args) -> int:
    from cnnlab.errors import CnnlabError
    from cnnlab.exercises import check_files

    flags = {"time_limit": "--time-limit", "memory_limit": "--memory-limit"}

    def show(result) -> None:
        for line in result.lines():
            print(CnnlabError(line).worded(flags))

    results = check_files(args.files, exercise=args.exercise,
                          time_limit=args.time_limit or None,
                          memory_limit=args.memory_limit or None,
                          weights_root=absolute(args.weights_root, "--weights-root"),
                          data_root=absolute(args.data_root, "--data-root"),
                          drop_in=not args.no_drop_in, progress=show)
    passed = sum(result.passed for result in results)
    print(f"{passed} of {len(results)} file(s) passed every check", file=sys.stderr)
    return 0 if passed == len(results) else 1


def add_parser(sub) -> None:
    exercises = sub.add_parser("exercises", help="check students' exercise files")
    esub = exercises.add_subparsers(dest="action", required=True)
    check = esub.add_parser(
        "check", help="check students' .py files, each in a child process of its own",
        description="Check students' .py files: each runs in a child process of its own, in an "
                    "empty scratch folder, with a memory cap, every call into its code under "
                    "--time-limit and the whole process under 4 x --time-limit + 60 s. One "
                    "line per file and exercise; exit code 0 when every file passed. Each "
                    "exercise is found by name: corr2d, pool2d, Residual, SPP (or "
                    "SpatialPyramidPooling), Hourglass.")
    check.add_argument("files", nargs="+", metavar="FILE", help="students' .py files (required)")
    check.add_argument("--exercise", metavar="NAME",
                       help="check only this exercise, one of " + ", ".join(EXERCISE_NAMES)
                            + " (default: every exercise whose name the file defines)")
    check.add_argument("--time-limit", type=number(float, low=0), default=60.0,
                       metavar="SECONDS",
                       help="seconds each call into student code may take: its top-level code, "
                            "constructing its module, each forward (default 60; 0: no limit)")
    check.add_argument("--memory-limit", type=number(float, low=0), default=8.0, metavar="GIB",
                       help="GiB of memory each file's process may use (default 8; 0: no cap)")
    check.add_argument("--weights-root", default=None,
                       help="folder of the official PSMNet weights for the SPP and hourglass "
                            "drop-in (default: $CNNLAB_WEIGHTS and the usual places)")
    check.add_argument("--data-root", default=None,
                       help="data folder holding KITTI2015/ for the drop-in (default: "
                            "$CNNLAB_DATA and the usual places)")
    check.add_argument("--no-drop-in", action="store_true",
                       help="skip the drop-in into the official PSMNet (default: run it)")
    check.set_defaults(func=cmd_check)

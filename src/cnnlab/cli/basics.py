"""``cnnlab basics``: from-scratch operators and autograd lessons."""

from __future__ import annotations

from cnnlab.errors import ConfigError


def cmd_list(args) -> int:
    from cnnlab.basics.lessons import LESSONS

    for name, (_, description) in LESSONS.items():
        print(f"{name:<26} {description}")
    return 0


def cmd_run(args) -> int:
    from cnnlab.basics.lessons import LESSONS, plot_lesson
    from cnnlab.engine.atomic import check_writable_folder

    if args.name not in LESSONS:  # checked here, not by argparse: --help loads no torch
        raise ConfigError(f"{args.name!r}: not a lesson; choose from {', '.join(LESSONS)}",
                          parameter="name")
    folder = check_writable_folder(args.out, "out")  # before the lesson trains
    result = LESSONS[args.name][0](seed=args.seed)
    print("\n".join(result.lines()))
    path = folder / f"{args.name}.png"
    plot_lesson(result, path)
    print(f"Plot: {path}")
    return 0


def add_parser(sub) -> None:
    basics = sub.add_parser("basics", help="from-scratch operators and autograd lessons")
    bsub = basics.add_subparsers(dest="action", required=True)
    bsub.add_parser("list", help="list the lessons").set_defaults(func=cmd_list)
    run = bsub.add_parser("run", help="run one lesson, print its result, write its plot")
    run.add_argument("name", metavar="NAME", help="the lesson (list them: cnnlab basics list)")
    run.add_argument("--seed", type=int, default=0, help="default 0")
    run.add_argument("--out", default="runs/basics",
                     help="folder for the PNG (default runs/basics)")
    run.set_defaults(func=cmd_run)

"""Command line: parses arguments, calls library functions, prints. No logic worth testing.

One module per lab (``classify``, ``stereo``, ``basics``) adds its commands; ``common`` holds
what they share.
"""

from __future__ import annotations

import argparse
import os
import sys

from cnnlab.cli import basics, classify, stereo
from cnnlab.cli.common import apply_config
from cnnlab.errors import CnnlabError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnlab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="lab", required=True)
    classify.add_parser(sub)
    basics.add_parser(sub)
    stereo.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # epoch lines reach log files as they happen
    try:
        if getattr(args, "config", None):
            args = apply_config(parser, args, argv)
        return args.func(args)
    except CnnlabError as exc:
        print(f"cnnlab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cnnlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141

"""``cnnlab stereo``: train, sweep, eval, predict, report, export, weights. Each command turns its
flags into the arguments of a stereo library call (``cnnlab.stereo.api``, its training, export
and weights rooms), which checks them, and prints what comes back: one module per group of
commands, ``shared`` for the flags several take."""

from __future__ import annotations

from cnnlab.cli.stereo.predict import add_predict_parser
from cnnlab.cli.stereo.scoring import add_eval_parser, add_report_parser
from cnnlab.cli.stereo.train import add_train_parsers
from cnnlab.cli.stereo.weights import add_export_parser, add_weights_parser


def add_parser(sub) -> None:
    stereo = sub.add_parser("stereo", help="stereo matching lab (PSMNet)")
    ssub = stereo.add_subparsers(dest="action", required=True)
    add_train_parsers(ssub)
    add_eval_parser(ssub)
    add_predict_parser(ssub)
    add_report_parser(ssub)
    add_export_parser(ssub)
    add_weights_parser(ssub)

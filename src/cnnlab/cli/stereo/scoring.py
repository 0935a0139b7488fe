"""``cnnlab stereo eval`` and ``report``: ``cnnlab.stereo.api.evaluate`` and ``report`` on the
flags, their table, findings and files printed."""

from __future__ import annotations

import argparse

from cnnlab.cli.common import (
    add_device,
    say,
    size,
)
from cnnlab.cli.stereo.shared import (
    add_folder_options,
    add_max_disparity,
    add_network,
    folder_options,
    model_spec,
    shown,
)
from cnnlab.stereo.choices import (
    BORDER,
    DATASETS,
    PAIR_COUNT,
    REPORT_BORDER,
    REPORT_FORMATS,
    SGBM_RANGE,
    SPLITS,
    SYNTHETIC_COUNT,
    SYNTHETIC_SIZE,
)


def _scored(args: argparse.Namespace) -> dict:
    """What eval and report score, as the library's keyword arguments."""
    return {"data_root": args.data_root, "split": args.split, "count": args.count,
            "synthetic_size": args.synthetic_size, "compare_sgbm": args.model == "both",
            "max_disparity": args.max_disparity, "folder": folder_options(args), "log": print}


def cmd_eval(args) -> int:
    from cnnlab.stereo.api import evaluate

    evaluation = evaluate(model_spec(args, "to evaluate PSMNet"), args.dataset, args.protocol,
                          json=args.json, note=say, **_scored(args))
    print(evaluation.table())
    if args.json:
        print(f"Results: {args.json}")
    return 0


def cmd_report(args) -> int:
    from cnnlab.stereo.api import report

    result = report(model_spec(args, "to analyse PSMNet"), args.dataset, border=args.border,
                    out=args.out, format=args.format, **_scored(args))
    for dataset in result.analysis["datasets"]:
        print(f"Findings on {dataset}:")
        for line in result.findings(dataset):
            print(f"  - {line}")
    for path in result.files:
        print(f"Wrote {path}")
    return 0


def _add_scored_data(parser: argparse.ArgumentParser, split_default: str | None,
                     split_help: str) -> None:
    """The pairs eval and report score: where the datasets are, their split, the synthetic
    scenes, the SGBM range and the folder dataset's options."""
    parser.add_argument("--data-root", help="the data root holding KITTI2015/, ... or a "
                                            "dataset's own folder (required for every dataset "
                                            "but synthetic and folder; default: none)")
    parser.add_argument("--split", choices=SPLITS, default=split_default, help=split_help)
    parser.add_argument("--count", type=PAIR_COUNT,
                        help=f"synthetic pairs (default {SYNTHETIC_COUNT})")
    parser.add_argument("--synthetic-size", type=size,
                        help=f"default {shown(SYNTHETIC_SIZE)}")
    add_max_disparity(parser, "SGBM range, rounded up to a multiple of 16, and the synthetic "
                              f"scenes' (default: the model's, else {SGBM_RANGE})", sgbm=True)
    add_folder_options(parser)


def add_eval_parser(ssub) -> None:
    from cnnlab.stereo.evaluation.protocols import PROTOCOLS  # torch-free, for --help

    evaluate = ssub.add_parser("eval", help="EPE / D1 / bad-x tables, PSMNet and/or SGBM")
    add_network(evaluate, "unless --model sgbm")
    evaluate.add_argument("--model", choices=("psmnet", "sgbm", "both"), default="psmnet",
                          help="default psmnet")
    evaluate.add_argument("--protocol", choices=list(PROTOCOLS),
                          help="a published protocol: its dataset, split, pixel masks, metrics "
                               "and aggregation, with the published figures printed beside "
                               "the measured ones and the definition in --json: sceneflow "
                               "(FlyingThings3D TEST, EPE on 0 < gt < 192), kitti2015-val (D1 "
                               "all/noc/bg/fg), kitti2012-val (> 3 px all/noc), middlebury "
                               "(bad-2.0 and EPE, nonocc/all) (default: none; give --dataset)")
    evaluate.add_argument("--dataset", choices=DATASETS, action="append",
                          help="dataset to score (repeatable; required unless --protocol)")
    _add_scored_data(evaluate, None, "the published split to score: KITTI val = frames "
                                     "160+, SceneFlow test = FlyingThings3D TEST (default: the "
                                     "protocol's, else all)")
    evaluate.add_argument("--json", help="write all results and the model card to this JSON "
                                         "file (default: print only; eval writes nothing "
                                         "else)")
    add_device(evaluate)
    evaluate.set_defaults(func=cmd_eval)


def add_report_parser(ssub) -> None:
    report = ssub.add_parser("report", help="where PSMNet fails: errors by region (occluded, "
                                            "low-texture, border, near/far) against SGBM, "
                                            "as an HTML or Markdown report")
    add_network(report, "unless --model sgbm")
    report.add_argument("--model", choices=("psmnet", "sgbm", "both"), default="both",
                        help="the methods compared (default both)")
    report.add_argument("--dataset", choices=DATASETS, action="append", required=True,
                        help="dataset to analyse (repeatable; required)")
    _add_scored_data(report, None, "the split analysed (default all)")
    report.add_argument("--border", type=BORDER, default=REPORT_BORDER,
                        help=f"width in px of the image-border region (default {REPORT_BORDER})")
    report.add_argument("--format", choices=list(REPORT_FORMATS), default="html",
                        help="html: one self-contained file; markdown: a .md file with its PNGs "
                             "in <stem>_files/ (default html); the numbers also go to "
                             "<stem>.json")
    report.add_argument("--out", default="runs/report",
                        help="the report file; its suffix is added when missing (default "
                             "runs/report.html, or runs/report.md with --format markdown)")
    add_device(report)
    report.set_defaults(func=cmd_report)

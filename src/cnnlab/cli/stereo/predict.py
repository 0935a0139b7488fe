"""``cnnlab stereo predict``: ``cnnlab.stereo.api.predict_folder`` on the flags, one pair's
figures or many pairs' folder printed."""

from __future__ import annotations

import argparse
import sys

from cnnlab.cli.common import (
    add_device,
    say,
    size,
)
from cnnlab.cli.stereo.shared import (
    add_gt_format,
    add_max_disparity,
    add_network,
    model_spec,
)
from cnnlab.errors import ConfigError
from cnnlab.stereo.choices import (
    BASELINE,
    CONFIDENCE_LEVEL,
    CONFIDENCE_RADIUS,
    FOCAL,
    MAX_MEMORY,
    MIN_CONFIDENCE,
    MIN_DEPTH,
    PREDICT_OUT,
    SGBM_RANGE,
)


def _tile_option(text: str) -> str | tuple[int, int]:
    return text if text in ("auto", "off") else size(text)


def _calibration(args: argparse.Namespace) -> str | tuple[float, float] | None:
    """--calib FILE, or --focal and --baseline, as the library's ``calibration``."""
    if (args.focal is None) != (args.baseline is None):
        raise ConfigError("--focal and --baseline go together (or use --calib FILE)")
    if args.calib:
        return args.calib
    return None if args.focal is None else (args.focal, args.baseline)


def cmd_predict(args) -> int:
    from cnnlab.stereo.api import predict_folder

    calibration = _calibration(args)
    model = model_spec(args, "(or --model sgbm)", max_disparity=args.max_disparity)
    run = predict_folder(model, args.left, args.right, args.out, pair_list=args.list,
                         gt=args.gt, gt_format=args.gt_format, gt_scale=args.gt_scale,
                         calibration=calibration, min_depth=args.min_depth,
                         lr_check=args.lr_check, filter=args.filter,
                         min_confidence=args.min_confidence,
                         kitti_submission=args.kitti_submission,
                         overview=args.overview, log=print, note=say)
    if run.archive is None and run.total == 1 and len(run):
        _print_single(run[0])
    elif run.archive is None and len(run):
        print(f"Outputs of {len(run)} pairs: {run.out}")
    if run.failures:
        print(f"cnnlab: error: {len(run.failures)} of {run.total} pairs failed (see above)",
              file=sys.stderr)
        return 1
    return 0


def _print_single(result: dict) -> None:
    if result["disparity_range"]:
        low, high = result["disparity_range"]
        print(f"Disparity {result['size'][1]}x{result['size'][0]}: {low:.2f} to {high:.2f} px"
              + (f", {100 * result['density']:.1f}% of pixels" if result["density"] < 1 else ""))
    if "metrics" in result:
        m = result["metrics"]
        print(f"Against ground truth: EPE {m['epe']:.3f} px, D1 {m['d1']:.2f}%, "
              f"bad-3 {m['bad3']:.2f}%")
    if "metrics_kept" in result:
        m = result["metrics_kept"]
        print(f"On the {100 * result['kept']:.1f}% of pixels kept by --filter: EPE "
              f"{m['epe']:.3f} px, D1 {m['d1']:.2f}%")
    if "points" in result:
        median = result["median_depth_m"]
        print(f"Point cloud: {result['points']} points"
              + (f", median depth {median:.2f} m" if median is not None else ""))
    for name, path in result["outputs"].items():
        print(f"  {name}: {path}")


def add_predict_parser(ssub) -> None:
    predict = ssub.add_parser(
        "predict", help="disparity, confidence, depth and point cloud of one pair or many "
                        "(PSMNet or SGBM); a KITTI submission")
    predict.add_argument("left", nargs="?",
                         help="left image (any 8/16-bit PNG or JPEG), a folder of left images, "
                              "or a glob pattern (quoted) such as 'scenes/*/im0.png'")
    predict.add_argument("right", nargs="?",
                         help="right image, same size, rectified; or the folder holding right "
                              "images of the same names; or the matching glob pattern (its "
                              "wildcards pair the files)")
    predict.add_argument("--list", metavar="FILE",
                         help="a text file of pairs instead: 'left right [ground truth]' per "
                              "line, relative to the file's folder, # comments (default: none)")
    predict.add_argument("--model", choices=("psmnet", "sgbm"), default="psmnet",
                         help="psmnet (needs --weights or --checkpoint) or sgbm, OpenCV's "
                              "classical matcher (default psmnet)")
    add_network(predict, "with --model psmnet")
    add_max_disparity(predict, "the disparity range searched, in pixels: PSMNet's a multiple of "
                               "16, any number for SGBM (rounded up to 16) (default: the model "
                               f"card's, {SGBM_RANGE} for SGBM); see --min-depth", sgbm=True)
    predict.add_argument("--out",
                         help=f"folder for the outputs (default {PREDICT_OUT})")
    predict.add_argument("--no-overview", dest="overview", action="store_false", default=None,
                         help="leave out each pair's overview figure (NAME_overview.png), most "
                              "of the writing time: on a folder of pairs the run then goes at "
                              "the network's rate (default: written)")
    _add_depth_options(predict)
    predict.add_argument("--gt", help="ground-truth disparity for an error map and EPE/D1: a "
                                      "file, or with folders of pairs a folder (same stem) or a "
                                      "glob pattern (default: none)")
    add_gt_format(predict, unset=True)
    _add_pixel_options(predict)
    _add_tile_options(predict)
    predict.add_argument("--kitti-submission", metavar="DIR",
                         help="write DIR/disp_0/NNNNNN_10.png (16-bit, disparity x 256) for "
                              "each pair and DIR.zip as KITTI's server expects, instead of the "
                              "usual outputs (default: none)")
    add_device(predict)
    predict.set_defaults(func=cmd_predict)


def _add_depth_options(predict: argparse.ArgumentParser) -> None:
    """predict's calibration: depth and the point cloud, and the range the nearest depth needs."""
    predict.add_argument("--focal", type=FOCAL,
                         help="focal length in pixels, > 0 (default: from --calib; with "
                              "neither, no depth or point cloud)")
    predict.add_argument("--baseline", type=BASELINE,
                         help="baseline in metres, > 0 (default: from --calib)")
    predict.add_argument("--calib", help="KITTI calib_cam_to_cam / calib or Middlebury "
                                         "calib.txt, for depth and the point cloud (default: "
                                         "none)")
    predict.add_argument("--min-depth", type=MIN_DEPTH, metavar="METRES",
                         help="the nearest depth that matters: says which --max-disparity it "
                              "needs, from the calibration (default: none)")


def _add_pixel_options(predict: argparse.ArgumentParser) -> None:
    """predict's left-right check and confidence filter."""
    predict.add_argument("--lr-check", action="store_true",
                         help="also run the mirrored pair and mark pixels whose left and right "
                              "disparities disagree by more than 1 px (twice the time; SGBM "
                              "does its own; default off)")
    predict.add_argument("--filter", action="store_true",
                         help="leave out of depth and the point cloud the pixels below "
                              "--min-confidence and, with --lr-check, the inconsistent ones "
                              "(PSMNet's disparity files stay dense) (default off)")
    predict.add_argument("--min-confidence", type=CONFIDENCE_LEVEL,
                         help="--filter's threshold on the confidence map, the network's "
                              f"probability mass within {CONFIDENCE_RADIUS:g} px of its "
                              f"estimate (default {MIN_CONFIDENCE:g})")


def _add_tile_options(predict: argparse.ArgumentParser) -> None:
    """predict's tiles and memory budget."""
    predict.add_argument("--tile", type=_tile_option, default="auto", metavar="auto|off|HxW",
                         help="run the network on overlapping tiles: auto when the estimated "
                              "memory exceeds --max-memory (full-height tiles first: they "
                              "lose the least accuracy), off never (then a pair that does not "
                              "fit is refused), HxW tiles of at most that size, in the pixels "
                              "of the pair as the network sees it (after --scale) (default "
                              "auto)")
    predict.add_argument("--max-memory", type=MAX_MEMORY, metavar="MB",
                         help="memory the network may use, in MB, for --tile auto (default "
                              "80%% of what is available: the host's memory, or the GPU's "
                              "with --device cuda)")

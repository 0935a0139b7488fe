"""What several ``cnnlab stereo`` commands share: the flags that name a model and say how it
runs, the dataset "folder"'s flags, and their mapping onto the stereo library's arguments
(``cnnlab.stereo.api.ModelSpec``, ``open_folder``'s options)."""

from __future__ import annotations

import argparse

from cnnlab.cli.common import (
    add_model_source,
    boolean,
    say,
    settings_from_args,
)
from cnnlab.engine.rules import Rule
from cnnlab.errors import ConfigError
from cnnlab.stereo.choices import (
    FAST_SCALE,
    GT_FORMATS,
    GT_SCALE,
    PRECISIONS,
    RUNTIMES,
    SCALE,
    disparity_range_rule,
)

OFFICIAL_FILES = "a .safetensors or official PSMNet .tar file"
RUNNABLE_FILES = OFFICIAL_FILES + " (or, with --runtime, a .onnx file from cnnlab stereo export)"
WEIGHTS_LOOKUP = "$CNNLAB_WEIGHTS, then ~/.cache/cnnlab/weights"
SGBM_USE = "OpenCV's SGBM on the full-size pair, on the CPU"


def shown(value: object) -> str:
    """A value as a flag takes it (256x512, 1,2,1,1)."""
    if isinstance(value, tuple):
        return ("x" if len(value) == 2 else ",").join(str(v) for v in value)
    return str(value)


def disparity_range(sgbm: bool = False) -> Rule:
    """The argparse type of a range: the library's own rule, refused where it is parsed."""
    return disparity_range_rule(sgbm)


def source_of(args: argparse.Namespace, needed: str) -> str:
    """--model, --checkpoint and --weights as the library's ``name_or_path``: "sgbm", a
    checkpoint, or registered weights (a name: a path is --checkpoint's)."""
    if getattr(args, "model", "psmnet") == "sgbm":
        given = "--weights" if args.weights else "--checkpoint" if args.checkpoint else None
        if given:
            raise ConfigError(f"{given}: not used by --model sgbm ({SGBM_USE})")
        return "sgbm"
    if args.weights:
        from cnnlab.stereo.weights.registry import get_weights

        return get_weights(args.weights).name
    if not args.checkpoint:
        raise ConfigError(f"--checkpoint or --weights is required {needed}")
    return args.checkpoint


def model_spec(args: argparse.Namespace, needed: str, **special: object):
    """The model the flags name, as a ``ModelSpec`` (checked; loaded by the library call)."""
    from cnnlab.stereo.api import ModelSpec

    special = {"max_disparity": None, "model": None, **special}
    return settings_from_args(ModelSpec, args, name_or_path=source_of(args, needed), log=print,
                              note=say, **special)


def folder_options(args: argparse.Namespace) -> dict:
    """The dataset "folder"'s flags as ``open_folder``'s arguments."""
    return {"left": args.left, "right": args.right, "gt": args.gt, "pair_list": args.pair_list,
            "gt_format": args.gt_format, "gt_scale": args.gt_scale}


def add_weights_root(parser: argparse.ArgumentParser, what: str, **kwargs: object) -> None:
    """--weights-root, whose help says what it is for and where else weights are looked up."""
    parser.add_argument("--weights-root", metavar="DIR", help=what.format(WEIGHTS_LOOKUP),
                        **kwargs)


def add_weights_options(parser: argparse.ArgumentParser) -> None:
    """Where registered weights are found, and the card's convention overridden."""
    add_weights_root(parser, "folder holding PSMNet/<released file> or the file itself, searched "
                             "before {} (default: only those)")
    parser.add_argument("--download", action="store_true",
                        help="fetch missing registered weights from their official source "
                             "(kept only if they verify)")
    parser.add_argument("--align-corners", type=boolean, metavar="true|false",
                        help="override the card's upsampling convention (default: the card's)")


def add_inference_options(parser: argparse.ArgumentParser) -> None:
    """How the network runs on a pair: its scale and its precision."""
    scale = parser.add_mutually_exclusive_group()
    scale.add_argument("--scale", type=SCALE, default=1.0,
                       help="run the network on the pair downscaled by this factor, the "
                            "disparity brought back to full size: faster, coarser (default 1)")
    scale.add_argument("--fast", action="store_const", dest="scale", const=FAST_SCALE,
                       help=f"a preview: --scale {FAST_SCALE:.3g} (with bf16 where native: "
                            "KITTI 2015 pairs in 1.2 s instead of 3.4 s on a 2-core CPU, D1 "
                            "1.47%% instead of 0.32%%; default off)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="arithmetic of the network: fp32, or bf16/fp16 autocast with the "
                             "soft-argmin in fp32, or int8 (the 3-D stage quantized, CPUs with "
                             "VNNI only: 1.4x faster than bf16 on an AMX Xeon, calibrated "
                             "once per model) "
                             "(default auto: bf16 where the device runs it natively, e.g. "
                             "AVX-512 BF16 / AMX CPUs and recent GPUs, else fp32; fp32 with "
                             "--runtime onnxruntime/openvino)")
    parser.add_argument("--runtime", choices=RUNTIMES, default="torch",
                        help="what runs the network: torch (PyTorch, default), or an exported "
                             "graph given as --checkpoint FILE.onnx run by onnxruntime (the "
                             "'export' extra) or openvino (the 'openvino' extra), CPU only")


def add_network(parser: argparse.ArgumentParser, when: str) -> None:
    """--checkpoint/--weights (needed ``when``), where weights are found and how the network
    runs."""
    add_model_source(parser, "stereo", required=False, files=RUNNABLE_FILES, when=when)
    add_weights_options(parser)
    add_inference_options(parser)


def add_max_disparity(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                   help_text: str, sgbm: bool = False) -> None:
    # --maxdisp: the published code's name, which PSMNet users know
    parser.add_argument("--max-disparity", "--maxdisp", dest="max_disparity",
                        type=disparity_range(sgbm), metavar="D", help=help_text)


def add_gt_format(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                  unset: bool = False) -> None:
    """--gt-format and --gt-scale; ``unset``: None when not given (the library applies the
    default and refuses them where no ground truth is read)."""
    parser.add_argument("--gt-format", choices=GT_FORMATS, default=None if unset else "auto",
                        help="ground-truth format: pfm, kitti (16-bit PNG / 256), npy, png8 "
                             "(Middlebury 8-bit); auto goes by suffix and bit depth (default "
                             "auto)")
    parser.add_argument("--gt-scale", type=GT_SCALE, default=None if unset else 1.0,
                        help="the stored ground-truth value is disparity x this (after the "
                             "format's own decoding; Middlebury 2001: 8 or 16) (default 1)")


def add_folder_options(parser: argparse.ArgumentParser, train: bool = False) -> None:
    """--dataset folder: users' own pairs by glob patterns or a list file."""
    group = parser.add_argument_group(
        "--dataset folder (your own pairs: glob patterns, quoted, whose wildcards pair the "
        "files, e.g. --left 'data/*/left/*.png' --right 'data/*/right/*.png' --gt "
        "'data/*/disp/*.pfm'; or --list)")
    group.add_argument("--left", metavar="GLOB", help="left images (default: none)")
    group.add_argument("--right", metavar="GLOB", help="right images (default: none)")
    group.add_argument("--gt", metavar="GLOB", help="ground-truth disparities (default: none)")
    group.add_argument("--list", dest="pair_list", metavar="FILE",
                       help="a text file, 'left right ground-truth' per line, relative to the "
                            "file's folder, # comments (default: none)")
    if train:
        group.add_argument("--val-list", metavar="FILE",
                           help="validation pairs, a list file like --list (default: none, "
                                "no validation)")
    add_gt_format(group)

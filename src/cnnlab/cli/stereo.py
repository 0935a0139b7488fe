"""``cnnlab stereo``: train, eval, predict, weights (PSMNet and SGBM)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from cnnlab.cli.common import (
    COUNT,
    POSITIVE,
    POSITIVE_INT,
    absolute,
    add_device,
    add_model_source,
    add_optim_args,
    add_sweep_args,
    boolean,
    number,
    print_card,
    run_sweep_command,
    run_training,
    settings_from_args,
    size,
)
from cnnlab.errors import ConfigError
from cnnlab.stereo.choices import (
    CONFIDENCE_RADIUS,
    DATASETS,
    FAST_SCALE,
    GT_FORMATS,
    MIN_CONFIDENCE,
    PRECISIONS,
    RUNTIMES,
    SGBM_RANGE,
    VARIANTS,
    breaks_max_disparity,
    check_max_disparity,
    max_disparity_rule,
)
from cnnlab.stereo.evaluation.protocols import PROTOCOLS  # torch-free, for --help
from cnnlab.stereo.training.presets import PRESETS

OFFICIAL_FILES = "a .safetensors or official PSMNet .tar file"
RUNNABLE_FILES = OFFICIAL_FILES + " (or, with --runtime, a .onnx file from cnnlab stereo export)"


def disparity_range(sgbm: bool = False) -> Callable[[str], int]:
    """An argparse type refusing, where it is parsed, a range the library's rule refuses."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if breaks_max_disparity(value, sgbm):
            raise argparse.ArgumentTypeError(f"expected {max_disparity_rule(sgbm)}, got {text!r}")
        return value  # type: ignore[return-value]
    return parse


def blocks(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(v) for v in text.split(","))
    except ValueError:
        counts = ()
    if len(counts) != 4 or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected four positive counts like 3,16,3,3, "
                                         f"got {text!r}")
    return counts


def _shown(value: object) -> str:
    """A preset value as a flag takes it (256x512, 1,2,1,1)."""
    if isinstance(value, tuple):
        return ("x" if len(value) == 2 else ",").join(str(v) for v in value)
    return str(value)


def _train_settings(args):
    """The stereo task settings of train's flags (checked), paths made absolute."""
    from cnnlab.stereo.training.lab import StereoConfig, published_milestones

    if args.preset and args.init:
        raise ConfigError("--preset and --init: the preset sets an architecture, the --init "
                          "weights' card decides it; give the options you want instead")
    if args.milestones is None and not args.resume:
        args.milestones = published_milestones(args.dataset)
    _check_folder_options(args, [args.dataset])

    def settings() -> StereoConfig:
        init = args.init  # a file or run directory as an absolute path; a registered name as is
        if init and Path(init).exists():
            init = absolute(init, "--init")
        folder = {key: os.path.abspath(os.path.expanduser(getattr(args, key)))
                  if getattr(args, key) else None for key in FOLDER_OPTIONS}
        return settings_from_args(StereoConfig, args,
                                  data_root=absolute(args.data_root, "--data-root"),
                                  weights_root=absolute(args.weights_root, "--weights-root"),
                                  init=init, **folder)

    return settings


# stereo sweep's default search space: what the course's tuning question is about, in ranges
# a CPU sweep can afford from --preset cpu-small (whose values are inside: its baseline trial)
SWEEP_SPACE = ("lr=log:3e-4:3e-3", "schedule=choice:constant,cosine,step",
               "batch_size=choice:2,4,8", "jitter=choice:true,false")


def cmd_sweep(args) -> int:
    from cnnlab.stereo.training.lab import STEREO

    if args.dataset == "sceneflow":
        raise ConfigError("--dataset sceneflow: its validation pairs are the FlyingThings3D "
                          "TEST split, so a sweep would choose on the test set; sweep on "
                          "synthetic, KITTI or a folder with --val-list")
    if args.val_count == 0 or args.dataset == "middlebury" or (
            args.dataset == "folder" and not args.val_list):
        raise ConfigError("a sweep chooses on validation pairs, and this recipe has none: "
                          "give --val-count > 0 (synthetic, KITTI) or --val-list (folder)")

    return run_sweep_command(args, STEREO, _train_settings(args), SWEEP_SPACE,
                             f"runs/sweep-psmnet-{args.dataset}")


def cmd_train(args) -> int:
    from cnnlab.stereo.training.lab import STEREO

    settings = _train_settings(args)
    results, out, is_main = run_training(args, STEREO, settings, f"runs/psmnet-{args.dataset}")
    if is_main and "val" in results:
        print(f"Validation (last epoch): EPE {results['val']['epe']:.3f} px, "
              f"D1 {results['val']['d1']:.2f}%")
    if is_main:
        print(f"Run directory: {out}")
    return 0


def _load(args, device):
    """The PSMNet of --weights or --checkpoint, its card printed; with --runtime other than
    torch, the exported graph given as --checkpoint FILE.onnx."""
    from cnnlab.stereo.weights.registry import get_weights, load_model

    runtime = getattr(args, "runtime", "torch")
    exported = bool(args.checkpoint) and Path(args.checkpoint).suffix.lower() == ".onnx"
    if runtime != "torch" or exported:
        return _load_exported(args, runtime, exported)
    if args.weights:
        get_weights(args.weights)  # a name, not a path: unknown names get the list
    model, card = load_model(args.weights or args.checkpoint, device, args.weights_root,
                             args.download, overrides={"align_corners": args.align_corners},
                             log=print)
    source = card.source
    verified = f", verified by {source['verified']}" if source.get("verified") else ""
    print_card(card, f"Weights: {card.name or 'checkpoint'} ({source['file']}{verified})")
    return model, card


def _check_runtime_device(args) -> None:
    """An exported graph runs on the CPU: a GPU asked for by name is refused, not ignored."""
    if args.runtime != "torch" and args.device not in ("auto", "cpu"):
        raise ConfigError(f"--device {args.device}: --runtime {args.runtime} runs on the CPU "
                          "here; use --runtime torch for a GPU")


def _load_exported(args, runtime: str, exported: bool):
    from cnnlab.stereo.inference.runtime import ExportedStereoModel

    if runtime == "torch":
        raise ConfigError(f"--checkpoint {args.checkpoint}: an exported graph; run it with "
                          "--runtime onnxruntime or --runtime openvino")
    if not exported:
        raise ConfigError(f"--runtime {runtime}: give the exported model as --checkpoint "
                          "FILE.onnx (write one with: cnnlab stereo export --weights NAME "
                          "--out FILE.onnx)")
    path = Path(absolute(args.checkpoint, "--checkpoint"))
    if not path.is_file():
        raise ConfigError(f"--checkpoint {args.checkpoint}: no such file")
    if args.align_corners is not None:
        raise ConfigError("--align-corners: an exported graph has its convention built in; "
                          "export again to change it")
    if args.scale != 1:
        raise ConfigError("--scale/--fast: an exported graph searches the fixed range it was "
                          "exported with; previews need --runtime torch")
    model = ExportedStereoModel(path, runtime)
    print_card(model.card, f"Weights: {model.card.name or 'checkpoint'} exported ({path}, "
                           f"run by {runtime}, sizes {model.min_size[0]}x{model.min_size[1]} "
                           f"to {model.max_size[0]}x{model.max_size[1]})")
    return model, model.card


FOLDER_OPTIONS = ("left", "right", "gt", "pair_list", "val_list")


def _check_folder_options(args, datasets: list[str]) -> None:
    """The --dataset folder options, refused with other datasets rather than ignored."""
    if "folder" in datasets:
        return
    given = [name for name in FOLDER_OPTIONS if getattr(args, name, None)]
    if given:
        flag = "--" + given[0].replace("pair_list", "list").replace("_", "-")
        raise ConfigError(f"{flag}: for --dataset folder only")


def _scored_sources(args, datasets: list[str], split: str, confidence: float | None = None,
                    protocol=None):
    """What eval and report score: the datasets (each opened and checked before a model is
    loaded), the methods, the precision, the card and the disparity range."""
    from cnnlab.engine.device import select_device
    from cnnlab.engine.memory import keep_freed_memory
    from cnnlab.stereo.evaluation.evaluate import (
        eval_max_disparity,
        finish_sources,
        open_sources,
        predictors,
    )
    from cnnlab.stereo.inference.runtime import runtime_precision

    _check_folder_options(args, datasets)
    sources = open_sources(datasets, args.data_root, split, args.count, args.synthetic_size,
                           _folder_kwargs(args), protocol)
    model = card = None
    precision = "fp32"
    keep_freed_memory()
    if args.model in ("psmnet", "both"):
        _check_runtime_device(args)
        device = select_device(args.device)
        precision = runtime_precision(args.precision, args.runtime, device)
        model, card = _load(args, device)
    methods = predictors(args.model, model, card, args.max_disparity, precision, args.scale,
                         confidence)
    max_disparity = eval_max_disparity(card, args.max_disparity)
    sources = finish_sources(sources, methods, max_disparity, split, args.count,
                             args.synthetic_size)
    return sources, methods, precision, card, max_disparity


def cmd_eval(args) -> int:
    from cnnlab.engine.atomic import check_writable_folder
    from cnnlab.stereo.evaluation.evaluate import default_masks, score_sources
    from cnnlab.stereo.evaluation.protocols import get_protocol
    from cnnlab.stereo.results import Evaluation

    protocol = get_protocol(args.protocol) if args.protocol else None
    if protocol and args.dataset:
        raise ConfigError(f"--protocol {protocol.name} and --dataset: the protocol names its "
                          f"dataset ({protocol.dataset}); give one of them")
    if not protocol and not args.dataset:
        raise ConfigError("--dataset or --protocol is required")
    datasets = [protocol.dataset] if protocol else args.dataset
    split = args.split or (protocol.split if protocol else "all")
    if args.model in ("psmnet", "both") and not (args.checkpoint or args.weights):
        raise ConfigError("--checkpoint or --weights is required to evaluate PSMNet")
    if args.json:
        if Path(args.json).is_dir():
            raise ConfigError(f"--json {args.json}: a folder; give the name of a file to write")
        check_writable_folder(Path(args.json).parent, "--json")
    sources, methods, precision, card, _ = _scored_sources(args, datasets, split,
                                                           protocol=protocol)
    if protocol and split != protocol.split:
        print(f"note: --split {split} is not {protocol.name}'s published split "
              f"({protocol.split}); the figures are not comparable with the published ones",
              file=sys.stderr)
    how = {"psmnet": f" (in {precision}, scaled by {args.scale:.3g}, run by {args.runtime})"}
    results = score_sources(sources, methods, protocol.masks if protocol else default_masks,
                            print, how)
    evaluation = Evaluation(results, card, protocol, precision, split, args.scale, args.runtime)
    print(evaluation.table())
    if args.json:
        evaluation.save(Path(args.json))
        print(f"Results: {args.json}")
    return 0


def _predict_checks(args) -> None:
    """Option combinations refused before any file is read."""
    if (args.focal is None) != (args.baseline is None):
        raise ConfigError("--focal and --baseline go together (or use --calib FILE)")
    if args.min_depth is not None and not (args.focal or args.calib):
        raise ConfigError("--min-depth needs the calibration: --focal and --baseline, or "
                          "--calib FILE")
    if args.kitti_submission:  # the submission is the disparity alone, dense
        for flag, given in (("--filter", args.filter), ("--lr-check", args.lr_check),
                            ("--gt", args.gt), ("--calib", args.calib), ("--focal", args.focal),
                            ("--min-depth", args.min_depth is not None)):
            if given:
                raise ConfigError(f"{flag}: not used with --kitti-submission, which writes the "
                                  "disparity alone (KITTI's server fills holes itself)")
    if args.model == "sgbm":
        for flag, given in (("--weights", args.weights), ("--checkpoint", args.checkpoint),
                            ("--runtime", args.runtime != "torch"),
                            ("--scale/--fast", args.scale != 1),
                            ("--precision", args.precision != "auto"),
                            ("--tile", args.tile != "auto"),
                            ("--max-memory", args.max_memory is not None),
                            ("--device", args.device != "auto")):
            if given:
                raise ConfigError(f"{flag}: not used by --model sgbm (OpenCV's SGBM on the "
                                  "full-size pair, on the CPU)")
        for flag, given in (("--lr-check", args.lr_check), ("--filter", args.filter)):
            if given:
                raise ConfigError(f"{flag}: SGBM already leaves out the pixels that fail its "
                                  "own left-right check (1 px), and has no confidence map")
    elif not (args.weights or args.checkpoint):
        raise ConfigError("--checkpoint or --weights is required (or --model sgbm)")
    if args.model == "psmnet":
        check_max_disparity(args.max_disparity)
    if args.runtime != "torch":
        if args.tile not in ("auto", "off"):
            raise ConfigError(f"--tile {args.tile[0]}x{args.tile[1]}: an exported graph runs "
                              "whole pairs; use --runtime torch to tile")
        if args.max_disparity is not None:
            raise ConfigError("--max-disparity: an exported graph searches the range it was "
                              "exported with; use --runtime torch to change it")


def _tile_option(text: str) -> str | tuple[int, int]:
    if text in ("auto", "off"):
        return text
    return size(text)


def cmd_predict(args) -> int:
    from dataclasses import replace

    from cnnlab.engine.atomic import check_writable_folder
    from cnnlab.engine.device import select_device
    from cnnlab.engine.memory import keep_freed_memory
    from cnnlab.stereo.api import StereoModel
    from cnnlab.stereo.data.io import Calibration, read_calibration
    from cnnlab.stereo.data.submission import archive_path
    from cnnlab.stereo.inference.many_pairs import plan_pairs, run_pairs
    from cnnlab.stereo.inference.predict import range_advice
    from cnnlab.stereo.inference.runtime import runtime_precision

    _predict_checks(args)
    # every input is checked before a model is loaded or downloaded
    out = Path(args.out)
    submission = Path(args.kitti_submission) if args.kitti_submission else None
    if submission is not None:
        check_writable_folder(submission, "--kitti-submission")
        check_writable_folder(archive_path(submission).parent, "--kitti-submission")
    else:
        check_writable_folder(out, "--out")
    calibration = Calibration(args.focal, args.baseline) if args.focal else None
    if args.calib:
        calibration = read_calibration(Path(args.calib))
    plan = plan_pairs(args.left, args.right, out, pair_list=args.list, gt=args.gt,
                      gt_format=args.gt_format, gt_scale=args.gt_scale,
                      calibration=calibration, kitti_submission=submission)
    if args.model == "sgbm":
        model = StereoModel.sgbm(args.max_disparity or SGBM_RANGE)
    else:
        _check_runtime_device(args)
        device = select_device(args.device)
        precision = runtime_precision(args.precision, args.runtime, device)
        keep_freed_memory()
        network, card = _load(args, device)
        if args.max_disparity is not None:
            card = replace(card, kwargs=card.kwargs | {"max_disparity": args.max_disparity})
        if args.filter and not hasattr(network, "confidence_radius") and not args.lr_check:
            raise ConfigError("--filter: an exported graph gives no confidence map; add "
                              "--lr-check, or use --runtime torch")
        model = StereoModel(network, card, precision, device, args.scale, args.tile,
                            args.max_memory, args.runtime)
    tiles = model.tiles_for(plan.sizes)
    if calibration is not None and args.min_depth is not None:
        line, short = range_advice(calibration, args.min_depth, model.max_disparity)
        print(f"{'warning' if short else 'note'}: {line}", file=sys.stderr)
    run = run_pairs(model, plan, lr_check=args.lr_check, filter_pixels=args.filter,
                    min_confidence=args.min_confidence, tiles=tiles, log=print,
                    note=lambda line: print(line, file=sys.stderr))
    if run.archive is not None:
        print(f"KITTI submission: {submission / 'disp_0'} ({len(run)} maps), {run.archive}")
        for note in run.archive_notes:
            print(f"note: {note}", file=sys.stderr)
    elif plan.single and len(run):
        _print_single(run[0])
    elif len(run):
        print(f"Outputs of {len(run)} pairs: {out}")
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


def cmd_report(args) -> int:
    from cnnlab.engine.atomic import check_writable_folder
    from cnnlab.stereo.evaluation.evaluate import one_at_a_time
    from cnnlab.stereo.evaluation.report import analyse, findings, report_path, write_report
    from cnnlab.stereo.inference.methods import CONFIDENCE_RADIUS

    if args.model in ("psmnet", "both") and not (args.checkpoint or args.weights):
        raise ConfigError("--checkpoint or --weights is required to analyse PSMNet")
    out = report_path(Path(args.out or "runs/report"), args.format)  # refused now, not after
    check_writable_folder(out.parent, "--out")
    # PSMNet rates its pixels too: the report's sparsification curve
    sources, methods, precision, card, max_disparity = _scored_sources(
        args, args.dataset, args.split, CONFIDENCE_RADIUS)
    print(f"Analysing {', '.join(methods)} on {', '.join(sources)} (PSMNet in {precision}):")
    streams = {name: one_at_a_time(source) for name, source in sources.items()}
    analysis = analyse(methods, streams, max_disparity, print, border=args.border)
    written = write_report(analysis, out, args.format, card=card)
    for dataset in analysis["datasets"]:
        print(f"Findings on {dataset}:")
        for line in findings(analysis, dataset):
            print(f"  - {line}")
    for path in written:
        print(f"Wrote {path}")
    return 0


def cmd_export(args) -> int:
    import torch

    from cnnlab.engine.atomic import check_writable_folder
    from cnnlab.stereo.inference.export import check_export, check_pairs, export_onnx, onnx_parity

    check_writable_folder(Path(args.out).parent, "--out")
    check_export(Path(args.out), args.min_size, args.max_size)
    model, card = _load(args, torch.device("cpu"))
    written = export_onnx(model, card, Path(args.out), args.min_size, args.max_size, print)
    print(f"Exported {written['file']} in {written['export_seconds']} s")
    if args.no_check:
        return 0
    middle = tuple(16 * round((a + b) / 32) for a, b in zip(args.min_size, args.max_size))
    pairs = check_pairs(card, [args.min_size, middle])
    for row in onnx_parity(Path(args.out), model, pairs):
        height, width = row["size"]
        print(f"  ONNX Runtime vs PyTorch on a synthetic scene at {height}x{width}: max "
              f"{row['max_px']:.2e} px, mean {row['mean_px']:.2e} px")
    return 0


def cmd_weights(args) -> int:
    from cnnlab.stereo.weights.registry import STEREO_WEIGHTS, listing_card

    for name, entry in STEREO_WEIGHTS.items():
        path, status = entry.status(args.weights_root)
        print(f"{name:<22} {entry.description}")
        print(f"{'':<22} {status}; from {entry.origin}")
        if not args.brief:
            for line in listing_card(entry, path).summary():
                print(f"{'':<26}{line}")
    return 0


def cmd_weights_download(args) -> int:
    from cnnlab.engine.weights import resolve_weights
    from cnnlab.stereo.weights.registry import check_official, get_weights

    entry = get_weights(args.name)
    path = resolve_weights(entry, args.weights_root, True, check_official, print)
    print(f"{entry.name}: {path} ({entry.checksum or 'structure checked'})")
    return 0


def cmd_weights_import(args) -> int:
    from cnnlab.stereo.weights.registry import import_checkpoint

    path, card = import_checkpoint(args.file, Path(args.out), args.weights_root)
    print_card(card, f"Imported {args.file} -> {path}")
    return 0


WEIGHTS_LOOKUP = "$CNNLAB_WEIGHTS, then ~/.cache/cnnlab/weights"


def _weights_root(parser: argparse.ArgumentParser, what: str, **kwargs: object) -> None:
    """--weights-root, whose help says what it is for and where else weights are looked up."""
    parser.add_argument("--weights-root", metavar="DIR", help=what.format(WEIGHTS_LOOKUP),
                        **kwargs)


def _add_weights_options(parser: argparse.ArgumentParser) -> None:
    """Where registered weights are found, and the card's convention overridden."""
    _weights_root(parser, "folder holding PSMNet/<released file> or the file itself, searched "
                          "before {} (default: only those)")
    parser.add_argument("--download", action="store_true",
                        help="fetch missing registered weights from their official source "
                             "(kept only if they verify)")
    parser.add_argument("--align-corners", type=boolean, metavar="true|false",
                        help="override the card's upsampling convention (default: the card's)")


def _add_inference_options(parser: argparse.ArgumentParser) -> None:
    """How the network runs on a pair: its scale and its precision."""
    scale = parser.add_mutually_exclusive_group()
    scale.add_argument("--scale", type=number(float, 0, 1, low_open=True), default=1.0,
                       help="run the network on the pair downscaled by this factor, the "
                            "disparity brought back to full size: faster, coarser (default 1)")
    scale.add_argument("--fast", action="store_const", dest="scale", const=FAST_SCALE,
                       help=f"a preview: --scale {FAST_SCALE:.3g} (with bf16 where native: "
                            "KITTI 2015 pairs in 1.2 s instead of 3.4 s on a 2-core CPU, D1 "
                            "1.47%% instead of 0.32%%; default off)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="arithmetic of the network: fp32, or bf16/fp16 autocast with the "
                             "soft-argmin in fp32 (default auto: bf16 where the device runs "
                             "it natively, e.g. AVX-512 BF16 / AMX CPUs and recent GPUs, "
                             "else fp32; fp32 with --runtime onnxruntime/openvino)")
    parser.add_argument("--runtime", choices=RUNTIMES, default="torch",
                        help="what runs the network: torch (PyTorch, default), or an exported "
                             "graph given as --checkpoint FILE.onnx run by onnxruntime (the "
                             "'export' extra) or openvino (the 'openvino' extra), CPU only")


def _max_disparity(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                   help_text: str, sgbm: bool = False) -> None:
    # --maxdisp: the published code's name, which PSMNet users know
    parser.add_argument("--max-disparity", "--maxdisp", dest="max_disparity",
                        type=disparity_range(sgbm), metavar="D", help=help_text)


def _add_gt_format(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--gt-format", choices=GT_FORMATS, default="auto",
                        help="ground-truth format: pfm, kitti (16-bit PNG / 256), npy, png8 "
                             "(Middlebury 8-bit); auto goes by suffix and bit depth (default "
                             "auto)")
    parser.add_argument("--gt-scale", type=POSITIVE, default=1.0,
                        help="the stored ground-truth value is disparity x this (after the "
                             "format's own decoding; Middlebury 2001: 8 or 16) (default 1)")


def _add_folder_options(parser: argparse.ArgumentParser, train: bool = False) -> None:
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
    _add_gt_format(group)


def _folder_kwargs(args) -> dict:
    """open_folder's arguments from the --dataset folder options."""
    return {"left": args.left, "right": args.right, "gt": args.gt, "list_file": args.pair_list,
            "gt_format": args.gt_format, "gt_scale": args.gt_scale}


def _add_scored_data(parser: argparse.ArgumentParser, split_default: str | None,
                     split_help: str) -> None:
    """The pairs eval and report score: where the datasets are, their split, the synthetic
    scenes, the SGBM range and the folder dataset's options."""
    parser.add_argument("--data-root", help="the data root holding KITTI2015/, ... or a "
                                            "dataset's own folder (required for every dataset "
                                            "but synthetic and folder; default: none)")
    parser.add_argument("--split", choices=("train", "val", "test", "all"),
                        default=split_default, help=split_help)
    parser.add_argument("--count", type=POSITIVE_INT, default=8,
                        help="synthetic pairs (default 8)")
    parser.add_argument("--synthetic-size", type=size, default=(256, 512),
                        help="default 256x512")
    _max_disparity(parser, "SGBM range, rounded up to a multiple of 16, and the synthetic "
                           "scenes' (default: the model's, else 192)", sgbm=True)
    _add_folder_options(parser)


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    """What PSMNet is trained on and how: train's flags, and a sweep's base recipe."""
    parser.add_argument("--dataset", choices=DATASETS, default="synthetic",
                        help="training data (default synthetic)")
    parser.add_argument("--data-root", help="the dataset's folder or the data root holding it "
                                            "(required for every dataset but synthetic; "
                                            "default: none)")
    arch = parser.add_argument_group(
        "architecture (default: from --init's model card, else the values shown)")
    arch.add_argument("--variant", choices=VARIANTS, help="default stackhourglass")
    _max_disparity(arch, "disparity range, a multiple of 16 (default 192)")
    arch.add_argument("--blocks", type=blocks,
                      help="residual blocks of conv1_x..conv4_x (default 3,16,3,3)")
    arch.add_argument("--align-corners", type=boolean, metavar="true|false",
                      help="bilinear/trilinear upsampling convention (default true, the 2018 "
                           "official releases' convention; from scratch both train alike)")
    _add_folder_options(parser, train=True)
    parser.add_argument("--crop", type=size, default=(256, 512),
                        help="training crop HxW (default 256x512)")
    parser.add_argument("--samples-per-epoch", type=POSITIVE_INT, default=400,
                        help="default 400")
    parser.add_argument("--val-count", type=COUNT, default=8, help="validation pairs (default 8)")
    parser.add_argument("--synthetic-size", type=size, default=(256, 512),
                        help="synthetic scene size HxW (default 256x512)")
    parser.add_argument("--jitter", action=argparse.BooleanOptionalAction, default=True,
                        help="photometric jitter shared by both views (default on)")
    parser.add_argument("--workers", type=COUNT,
                        help="data-loading processes (default: 0 on 2 cores or fewer, else half "
                             "the cores up to 4); results do not depend on it")
    parser.add_argument("--init", metavar="WEIGHTS",
                        help="fine-tune from registered weights (e.g. psmnet-kitti2015), a run "
                             "directory, a .safetensors checkpoint or an official .tar (default: "
                             "train from scratch)")
    _weights_root(parser, "where registered --init weights are found, before {} (default: only "
                          "those; see stereo weights)")
    parser.add_argument("--out", help="run directory, or a sweep's folder (default "
                                      "runs/psmnet-DATASET, runs/sweep-psmnet-DATASET)")
    parser.add_argument("--preset", choices=list(PRESETS),
                        help="a named set of defaults; cpu-small: "
                             + ", ".join(f"{k}={_shown(v)}"
                                         for k, v in PRESETS["cpu-small"].items())
                             + " (flags given override them)")
    add_optim_args(parser, epochs=10, batch_size=4, lr=1e-3, schedule="step")


def add_parser(sub) -> None:

    stereo = sub.add_parser("stereo", help="stereo matching lab (PSMNet)")
    ssub = stereo.add_subparsers(dest="action", required=True)

    train = ssub.add_parser("train", help="train or fine-tune PSMNet")
    _add_train_options(train)
    train.set_defaults(func=cmd_train, command_parser=train, presets=PRESETS)

    sweep = ssub.add_parser("sweep", help="search hyper-parameters with Optuna on validation "
                                          "EPE: every trial a run directory, a Markdown report "
                                          "(needs the 'sweep' extra)")
    _add_train_options(sweep)
    add_sweep_args(sweep, "lr, crop, max_disparity, init, jitter, schedule, batch_size")
    sweep.set_defaults(func=cmd_sweep, command_parser=sweep, presets=PRESETS)

    evaluate = ssub.add_parser("eval", help="EPE / D1 / bad-x tables, PSMNet and/or SGBM")
    add_model_source(evaluate, "stereo", required=False, files=RUNNABLE_FILES,
                     when="unless --model sgbm")
    _add_weights_options(evaluate)
    _add_inference_options(evaluate)
    evaluate.add_argument("--model", choices=("psmnet", "sgbm", "both"), default="psmnet",
                          help="default psmnet")
    evaluate.add_argument("--protocol", choices=PROTOCOLS,
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
    add_model_source(predict, "stereo", required=False, files=RUNNABLE_FILES,
                     when="with --model psmnet")
    _add_weights_options(predict)
    _add_inference_options(predict)
    _max_disparity(predict, "the disparity range searched, in pixels: PSMNet's a multiple of "
                            "16, any number for SGBM (rounded up to 16) (default: the model "
                            "card's, 192 for SGBM); see --min-depth", sgbm=True)
    predict.add_argument("--out", default="runs/predict",
                         help="folder for the outputs (default runs/predict)")
    predict.add_argument("--focal", type=POSITIVE,
                         help="focal length in pixels, > 0 (default: from --calib; with "
                              "neither, no depth or point cloud)")
    predict.add_argument("--baseline", type=POSITIVE,
                         help="baseline in metres, > 0 (default: from --calib)")
    predict.add_argument("--calib", help="KITTI calib_cam_to_cam / calib or Middlebury "
                                         "calib.txt, for depth and the point cloud (default: "
                                         "none)")
    predict.add_argument("--min-depth", type=POSITIVE, metavar="METRES",
                         help="the nearest depth that matters: says which --max-disparity it "
                              "needs, from the calibration (default: none)")
    predict.add_argument("--gt", help="ground-truth disparity for an error map and EPE/D1: a "
                                      "file, or with folders of pairs a folder (same stem) or a "
                                      "glob pattern (default: none)")
    _add_gt_format(predict)
    predict.add_argument("--lr-check", action="store_true",
                         help="also run the mirrored pair and mark pixels whose left and right "
                              "disparities disagree by more than 1 px (twice the time; SGBM "
                              "does its own; default off)")
    predict.add_argument("--filter", action="store_true",
                         help="leave out of depth and the point cloud the pixels below "
                              "--min-confidence and, with --lr-check, the inconsistent ones "
                              "(PSMNet's disparity files stay dense) (default off)")
    predict.add_argument("--min-confidence", type=number(float, 0, 1),
                         default=MIN_CONFIDENCE,
                         help="--filter's threshold on the confidence map, the network's "
                              f"probability mass within {CONFIDENCE_RADIUS:g} px of its "
                              f"estimate (default {MIN_CONFIDENCE:g})")
    predict.add_argument("--tile", type=_tile_option, default="auto", metavar="auto|off|HxW",
                         help="run the network on overlapping tiles: auto when the estimated "
                              "memory exceeds --max-memory (full-height tiles first: they "
                              "lose the least accuracy), off never (then a pair that does not "
                              "fit is refused), HxW tiles of at most that size, in the pixels "
                              "of the pair as the network sees it (after --scale) (default "
                              "auto)")
    predict.add_argument("--max-memory", type=POSITIVE, metavar="MB",
                         help="memory the network may use, in MB, for --tile auto (default "
                              "80%% of what is available: the host's memory, or the GPU's "
                              "with --device cuda)")
    predict.add_argument("--kitti-submission", metavar="DIR",
                         help="write DIR/disp_0/NNNNNN_10.png (16-bit, disparity x 256) for "
                              "each pair and DIR.zip as KITTI's server expects, instead of the "
                              "usual outputs (default: none)")
    add_device(predict)
    predict.set_defaults(func=cmd_predict)

    report = ssub.add_parser("report", help="where PSMNet fails: errors by region (occluded, "
                                            "low-texture, border, near/far) against SGBM, "
                                            "as an HTML or Markdown report")
    add_model_source(report, "stereo", required=False, files=RUNNABLE_FILES,
                     when="unless --model sgbm")
    _add_weights_options(report)
    _add_inference_options(report)
    report.add_argument("--model", choices=("psmnet", "sgbm", "both"), default="both",
                        help="the methods compared (default both)")
    report.add_argument("--dataset", choices=DATASETS, action="append", required=True,
                        help="dataset to analyse (repeatable; required)")
    _add_scored_data(report, "all", "the split analysed (default all)")
    report.add_argument("--border", type=COUNT, default=32,
                        help="width in px of the image-border region (default 32)")
    report.add_argument("--format", choices=("html", "markdown"), default="html",
                        help="html: one self-contained file; markdown: a .md file with its PNGs "
                             "in <stem>_files/ (default html); the numbers also go to "
                             "<stem>.json")
    report.add_argument("--out", help="the report file; its suffix is added when missing "
                                      "(default runs/report.html, or runs/report.md with "
                                      "--format markdown)")
    add_device(report)
    report.set_defaults(func=cmd_report)

    export = ssub.add_parser("export", help="PSMNet as ONNX with dynamic height and width "
                                            "(needs the 'export' extra)")
    add_model_source(export, "stereo", files=OFFICIAL_FILES)
    _add_weights_options(export)
    export.add_argument("--format", choices=("onnx",), default="onnx",
                        help="file format (default onnx, the only one so far)")
    export.add_argument("--out", required=True, help="the .onnx file to write")
    export.add_argument("--min-size", type=size, default=(256, 512),
                        help="smallest HxW the file accepts, multiples of 16, at least "
                             "256x512 (default 256x512)")
    export.add_argument("--max-size", type=size, default=(1008, 2048),
                        help="largest HxW, multiples of 16 (default 1008x2048: KITTI's "
                             "384x1248 and SceneFlow's 544x960 lie between)")
    export.add_argument("--no-check", action="store_true",
                        help="skip comparing ONNX Runtime with PyTorch at two sizes")
    export.set_defaults(func=cmd_export)

    weights = ssub.add_parser("weights", help="official PSMNet releases: where they are, their "
                                              "cards; download or import one")
    _weights_root(weights, "search this folder first, then {} (default: only "
                           "those)")
    weights.add_argument("--brief", action="store_true", help="without the model cards")
    weights.set_defaults(func=cmd_weights)
    wsub = weights.add_subparsers(dest="weights_action")
    download = wsub.add_parser("download", help="fetch a release and keep it if it verifies")
    download.add_argument("name", help="registered weights name")
    _weights_root(download, "download into this folder (default {})", default=argparse.SUPPRESS)
    download.set_defaults(func=cmd_weights_download)
    imported = wsub.add_parser("import", help="convert an official .tar (or registered weights) "
                                              "into a cnnlab .safetensors with its model card")
    imported.add_argument("file", help="official .tar, or a registered name")
    imported.add_argument("--out", required=True, help="the .safetensors file to write")
    _weights_root(imported, "where a registered name is found, before {} (default: only those)",
                  default=argparse.SUPPRESS)
    imported.set_defaults(func=cmd_weights_import)

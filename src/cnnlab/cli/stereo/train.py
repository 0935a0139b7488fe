"""``cnnlab stereo train`` and ``sweep``: the flags as the library's ``StereoConfig``, trained by
the engine's training steps (``cnnlab.cli.common.run_training``, ``run_sweep_command``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cnnlab.cli.common import (
    absolute,
    add_optim_args,
    add_sweep_args,
    boolean,
    rule,
    run_sweep_command,
    run_training,
    settings_from_args,
    size,
)
from cnnlab.cli.stereo.shared import (
    add_folder_options,
    add_max_disparity,
    add_weights_root,
    shown,
)
from cnnlab.engine.rules import Rule
from cnnlab.stereo.choices import (
    CROP,
    DATASETS,
    DEFAULT_MAX_DISPARITY,
    FOLDER_OPTIONS,
    SAMPLES_PER_EPOCH,
    SYNTHETIC_SIZE,
    TRAIN_DEFAULTS,
    VAL_COUNT,
    VARIANTS,
)
from cnnlab.stereo.training.presets import PRESETS, check_preset, preset_defaults
from cnnlab.stereo.training.settings import StereoConfig

# stereo sweep's default search space: what the course's tuning question is about, in ranges
# a CPU sweep can afford from --preset cpu-small (whose values are inside: its baseline trial)
SWEEP_SPACE = ("lr=log:3e-4:3e-3", "schedule=choice:constant,cosine,step",
               "batch_size=choice:2,4,8", "jitter=choice:true,false")


def blocks(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(v) for v in text.split(","))
    except ValueError:
        counts = ()
    if len(counts) != 4 or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected four positive counts like 3,16,3,3, "
                                         f"got {text!r}")
    return counts


def _train_settings(args: argparse.Namespace):
    """train's flags as the library's ``StereoConfig`` (made when a new run needs it), with its
    paths absolute, so that a saved run works from any folder."""
    check_preset(args.preset, args.init)

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


def _rerun_under_tcmalloc(args: argparse.Namespace) -> None:
    """Training a stereo network runs under tcmalloc where it is installed: a smaller peak
    (2.7 instead of 3.7 GB at 256x512, batch 2, bf16), no slower; before torch loads."""
    if getattr(args, "whole_process", False):
        from cnnlab.engine.memory import rerun_under_tcmalloc

        rerun_under_tcmalloc()


def cmd_train(args) -> int:
    _rerun_under_tcmalloc(args)
    from cnnlab.stereo.training.lab import STEREO

    settings = _train_settings(args)
    results, out, is_main = run_training(args, STEREO, settings, f"runs/psmnet-{args.dataset}")
    if is_main and "val" in results:
        print(f"Validation (last epoch): EPE {results['val']['epe']:.3f} px, "
              f"D1 {results['val']['d1']:.2f}%")
    if is_main:
        print(f"Run directory: {out}")
    return 0


def cmd_sweep(args) -> int:
    _rerun_under_tcmalloc(args)
    from cnnlab.stereo.training.lab import STEREO

    settings = _train_settings(args)
    return run_sweep_command(args, STEREO, settings, SWEEP_SPACE,
                             f"runs/sweep-psmnet-{args.dataset}")


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    """What PSMNet is trained on and how: train's flags, and a sweep's base recipe; each flag
    takes its setting's rule (``StereoConfig``)."""
    def kind(name: str) -> Rule:
        return rule(StereoConfig, name)

    parser.add_argument("--dataset", choices=DATASETS, default="synthetic",
                        help="training data (default synthetic)")
    parser.add_argument("--data-root", help="the dataset's folder or the data root holding it "
                                            "(required for every dataset but synthetic; "
                                            "default: none)")
    arch = parser.add_argument_group(
        "architecture (default: from --init's model card, else the values shown)")
    arch.add_argument("--variant", choices=VARIANTS, help=f"default {VARIANTS[0]}")
    add_max_disparity(arch, f"disparity range, a multiple of 16 (default {DEFAULT_MAX_DISPARITY})")
    arch.add_argument("--blocks", type=blocks,
                      help="residual blocks of conv1_x..conv4_x (default 3,16,3,3)")
    arch.add_argument("--align-corners", type=boolean, metavar="true|false",
                      help="bilinear/trilinear upsampling convention (default true, the 2018 "
                           "official releases' convention; from scratch both train alike)")
    add_folder_options(parser, train=True)
    parser.add_argument("--crop", type=size, default=CROP,
                        help=f"training crop HxW (default {shown(CROP)})")
    parser.add_argument("--samples-per-epoch", type=kind("samples_per_epoch"),
                        default=SAMPLES_PER_EPOCH,
                        help=f"default {SAMPLES_PER_EPOCH}")
    parser.add_argument("--val-count", type=kind("val_count"), default=VAL_COUNT,
                        help=f"validation pairs (default {VAL_COUNT})")
    parser.add_argument("--synthetic-size", type=size, default=SYNTHETIC_SIZE,
                        help=f"synthetic scene size HxW (default {shown(SYNTHETIC_SIZE)})")
    parser.add_argument("--jitter", action=argparse.BooleanOptionalAction, default=True,
                        help="photometric jitter shared by both views (default on)")
    parser.add_argument("--workers", type=kind("workers"),
                        help="data-loading processes (default: 0 on 2 cores or fewer, else half "
                             "the cores up to 4); results do not depend on it")
    parser.add_argument("--init", metavar="WEIGHTS",
                        help="fine-tune from registered weights (e.g. psmnet-kitti2015), a run "
                             "directory, a .safetensors checkpoint or an official .tar (default: "
                             "train from scratch)")
    add_weights_root(parser, "where registered --init weights are found, before {} (default: only "
                             "those; see stereo weights)")
    parser.add_argument("--out", help="run directory, or a sweep's folder (default "
                                      "runs/psmnet-DATASET, runs/sweep-psmnet-DATASET)")
    parser.add_argument("--preset", choices=list(PRESETS),
                        help="a named set of defaults; cpu-small: "
                             + ", ".join(f"{k}={shown(v)}"
                                         for k, v in PRESETS["cpu-small"].items())
                             + " (flags given override them)")
    add_optim_args(parser, **TRAIN_DEFAULTS)


ALLOCATOR_NOTE = ("Memory: where tcmalloc is installed (apt install libtcmalloc-minimal4), "
                  "the command reruns itself under it before loading torch: a smaller peak "
                  "(2.7 instead of 3.7 GB at 256x512, batch 2, bf16), no slower. "
                  "CNNLAB_ALLOCATOR=system keeps the C library's malloc.")


def add_train_parsers(ssub) -> None:
    train = ssub.add_parser("train", help="train or fine-tune PSMNet", epilog=ALLOCATOR_NOTE)
    _add_train_options(train)
    train.set_defaults(func=cmd_train, command_parser=train, presets=preset_defaults)
    sweep = ssub.add_parser("sweep", help="search hyper-parameters with Optuna on validation "
                                          "EPE: every trial a run directory, a Markdown report "
                                          "(needs the 'sweep' extra)",
                                 epilog=ALLOCATOR_NOTE)
    _add_train_options(sweep)
    add_sweep_args(sweep, "lr, crop, max_disparity, init, jitter, schedule, batch_size")
    sweep.set_defaults(func=cmd_sweep, command_parser=sweep, presets=preset_defaults)

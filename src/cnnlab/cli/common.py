"""What the labs' commands share: value parsers, flag groups, the training command's steps and
``--config`` (a saved run's settings as the flags' defaults)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from cnnlab.errors import ConfigError


def parse_value(text: str) -> Any:
    """A --model-arg value: int, float, true/false, else the text itself."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def model_kwargs(pairs: list[str] | None) -> dict[str, Any]:
    """--model-arg KEY=VALUE pairs as keyword arguments."""
    kwargs = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"--model-arg {pair!r}: expected KEY=VALUE")
        key, value = pair.split("=", 1)
        kwargs[key.strip()] = parse_value(value.strip())
    return kwargs


def size(text: str) -> tuple[int, int]:
    """HxW, e.g. 256x512."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 256x512, got {text!r}") from None
    return height, width


def boolean(text: str) -> bool:
    value = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    if text.lower() not in value:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return value[text.lower()]


def absolute(path: str | None) -> str | None:
    """A folder as an absolute path, so that a saved run works from any working directory."""
    return str(Path(path).expanduser().resolve()) if path else None


def settings_from_args(config_class: type, args: argparse.Namespace, **special: Any):
    """``config_class`` filled from the flags whose destination is one of its fields."""
    values = {f.name: getattr(args, f.name) for f in fields(config_class)
              if f.name not in special and hasattr(args, f.name)}
    return config_class(**values, **special)


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N "
                             "(default auto)")


def add_optim_args(parser: argparse.ArgumentParser, epochs: int, batch_size: int, lr: float,
                   optimizer: str = "adam", schedule: str = "constant") -> None:
    """The optimisation flags every lab's train command has."""
    from cnnlab.engine.device import AMP_DTYPES
    from cnnlab.engine.optim import OPTIMIZERS, SCHEDULES

    group = parser.add_argument_group("optimisation")
    group.add_argument("--epochs", type=int, default=None,
                       help=f"epochs to train (default {epochs}; with --resume: the run's own, "
                            "or more to extend it)")
    parser.set_defaults(default_epochs=epochs)
    group.add_argument("--batch-size", type=int, default=batch_size,
                       help=f"default {batch_size}")
    group.add_argument("--optimizer", choices=OPTIMIZERS, default=optimizer,
                       help=f"default {optimizer}")
    group.add_argument("--lr", type=float, default=lr, help=f"learning rate (default {lr:g})")
    group.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    group.add_argument("--weight-decay", type=float, default=0.0, help="default 0")
    group.add_argument("--schedule", choices=SCHEDULES, default=schedule,
                       help=f"learning-rate schedule (default {schedule})")
    group.add_argument("--milestones", type=int, nargs="*", default=None,
                       help="epochs at which the 'step' schedule multiplies the lr by --gamma "
                            "(default: none; stereo on KITTI: 200, as published)")
    group.add_argument("--gamma", type=float, default=0.1, help="default 0.1")
    group.add_argument("--warmup-epochs", type=float, default=0.0,
                       help="linear warm-up of the cosine schedule, in epochs (default 0)")
    group.add_argument("--grad-clip", type=float, default=None,
                       help="clip the gradient norm to this value (default: no clipping)")
    group.add_argument("--amp", choices=list(AMP_DTYPES), default="none",
                       help="mixed precision on CUDA (ignored on CPU; default none)")
    group.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False,
                       help="torch.compile the model (on the CPU it needs a C++ compiler and "
                            "takes about 20 s to start; default off)")
    group.add_argument("--seed", type=int, default=0, help="default 0")
    add_device(group)
    group.add_argument("--resume", metavar="RUN_DIR", help="continue this run exactly")
    group.add_argument("--config", metavar="FILE",
                       help="a run's config.json (or its run directory): its settings become "
                            "the defaults, so the run is reproduced; flags given override them")
    group.add_argument("--stop-after", type=int, metavar="EPOCHS",
                       help="stop after this many epochs; the schedule still plans for "
                            "--epochs and --resume continues")
    group.add_argument("--no-progress", action="store_true", help="no progress bar")


def optim_from_args(args: argparse.Namespace) -> Any:
    from cnnlab.engine.config import OptimConfig

    epochs = args.epochs if args.epochs is not None else args.default_epochs
    return settings_from_args(OptimConfig, args, epochs=epochs,
                              milestones=tuple(args.milestones or ()))


def config_defaults(run: Any) -> dict[str, Any]:
    """A saved run's settings as flag defaults (the inverse of ``settings_from_args``); the
    worker count is the machine's, so it is chosen afresh."""
    values = {**vars(run.task), **vars(run.optim)}
    values.pop("workers", None)
    return values


def training_lab(name: str) -> Any:
    """The Lab that trains runs of lab ``name`` (imported on demand: --help stays fast)."""
    if name == "classify":
        from cnnlab.classify.train import CLASSIFY
        return CLASSIFY
    from cnnlab.stereo.train import STEREO
    return STEREO


def apply_config(parser: argparse.ArgumentParser, args: argparse.Namespace,
                 argv: list[str] | None) -> argparse.Namespace:
    """With ``--config FILE``: parse again with the saved run's settings as the defaults of
    the train command, so flags given on the command line still win."""
    from cnnlab.engine.lab import read_run_config

    if args.resume:
        raise ConfigError("--config and --resume: use one (--resume continues a run, --config "
                          "starts a new one with its settings)")
    run = read_run_config(args.config, training_lab(args.lab))
    args.command_parser.set_defaults(**config_defaults(run))
    return parser.parse_args(argv)


def run_training(args: argparse.Namespace, lab: Any, task_settings: Callable[[], Any],
                 default_out: str, log: Callable[[str], None] = print
                 ) -> tuple[dict[str, Any], Path, bool]:
    """The train command's steps: resume or a new run, torchrun's process group, train_run.
    Returns (results, run directory, whether this is the main process)."""
    from cnnlab.engine.config import RunConfig
    from cnnlab.engine.device import select_device
    from cnnlab.engine.distributed import cleanup, init_from_env
    from cnnlab.engine.lab import read_run_config, resumed_config, train_run

    if args.resume:
        machine = {k: getattr(args, k, None) for k in lab.machine_settings}
        machine.update({k: absolute(v) for k, v in machine.items()
                        if k.endswith("_root") and v is not None})
        run = resumed_config(read_run_config(args.resume, lab), lab, args.epochs, machine)
        out = Path(args.resume)
    else:
        run = RunConfig(lab.name, task_settings(), optim_from_args(args))
        out = Path(args.out or default_out)
    info = init_from_env(select_device(args.device).type)
    try:
        results = train_run(run, lab, out, bool(args.resume), args.device, info,
                            log if info.is_main else (lambda _msg: None),
                            not args.no_progress, args.stop_after,
                            getattr(args, "download", False))
    finally:
        cleanup(info)
    return results, out, info.is_main


def add_model_source(parser: argparse.ArgumentParser, lab: str, required: bool = True,
                     files: str = "a .safetensors file") -> None:
    source = parser.add_mutually_exclusive_group(required=required)
    source.add_argument("--checkpoint", help="a run directory (its best, else last, checkpoint) "
                                             f"or {files}")
    source.add_argument("--weights", metavar="NAME",
                        help=f"registered weights by name (list them: cnnlab {lab} weights)")


def print_card(card: Any, heading: str) -> None:
    print(heading)
    for line in card.summary():
        print(f"  {line}")


def size_text(path: Path) -> str:
    size_bytes = path.stat().st_size
    return f"{size_bytes / 1e6:.1f} MB" if size_bytes >= 1e6 else f"{size_bytes / 1e3:.0f} kB"

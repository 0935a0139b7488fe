"""What the labs' commands share: value parsers, flag groups, the training command's steps and
``--config`` (a saved run's settings as the flags' defaults)."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import functools
import os
import sys
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, NoReturn

from cnnlab.engine.config import AMP_CHOICES, OPTIMIZERS, SCHEDULES, OptimConfig
from cnnlab.engine.rules import COUNT as COUNT  # the flags' common rules, re-exported
from cnnlab.engine.rules import NON_NEGATIVE as NON_NEGATIVE
from cnnlab.engine.rules import POSITIVE as POSITIVE
from cnnlab.engine.rules import POSITIVE_INT as POSITIVE_INT
from cnnlab.engine.rules import Rule, rule_of
from cnnlab.errors import CnnlabError, ConfigError


class Parser(argparse.ArgumentParser):
    """argparse with cnnlab's error format: one line naming the option, then exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"cnnlab: error: {message} (see: {self.prog} --help)\n")


def number(cast: type = float, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, multiple: int | None = None
           ) -> Rule:
    """An argparse type for a flag with no library setting behind it (a settings field's flag
    takes the field's own rule, see ``rule``): ``cast`` of the text, finite, within
    [low, high] (open ends where asked) and a multiple of ``multiple``."""
    return Rule(cast, low, high, low_open, high_open, multiple)


def rule(settings: type, name: str) -> Rule:
    """The argparse type of the flag that sets field ``name`` of a settings dataclass: the
    field's own rule, so that the flag, config files, sweeps and Python share one rule."""
    found = rule_of(settings, name)
    if found is None:
        raise AssertionError(f"{settings.__name__}.{name} has no rule")
    return dataclasses.replace(found, each=False)


def size(text: str) -> tuple[int, int]:
    """HxW, e.g. 256x512, both at least 1."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 256x512, got {text!r}") from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"expected a positive HxW, got {text!r}")
    return height, width


def boolean(text: str) -> bool:
    value = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    if text.lower() not in value:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return value[text.lower()]


def absolute(path: str | None, option: str) -> str | None:
    """A folder as an absolute path, so that a saved run works from any working directory."""
    if not path:
        return None
    expanded = Path(path).expanduser()
    try:
        os.stat(expanded)
    except OSError as exc:  # a missing path is the reader's to report, with its own words
        if exc.errno == errno.ELOOP:
            raise ConfigError(f"{option} {path}: a loop of symbolic links") from None
    try:
        return str(expanded.resolve())
    except RuntimeError:  # Python < 3.13 on a loop below a missing folder
        raise ConfigError(f"{option} {path}: a loop of symbolic links") from None


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
    """The optimisation flags every lab's train command has, each with its setting's rule."""
    group = parser.add_argument_group("optimisation")

    def kind(name: str) -> Rule:
        return rule(OptimConfig, name)

    group.add_argument("--epochs", type=kind("epochs"), default=None,
                       help=f"epochs to train (default {epochs}; with --resume: the run's own, "
                            "or more to extend it)")
    parser.set_defaults(default_epochs=epochs)
    group.add_argument("--batch-size", type=kind("batch_size"), default=batch_size,
                       help=f"default {batch_size}")
    group.add_argument("--optimizer", choices=OPTIMIZERS, default=optimizer,
                       help=f"default {optimizer}")
    group.add_argument("--lr", type=kind("lr"), default=lr,
                       help=f"learning rate (default {lr:g})")
    group.add_argument("--momentum", type=kind("momentum"), default=0.9,
                       help="SGD momentum, in [0, 1) (default 0.9)")
    group.add_argument("--weight-decay", type=kind("weight_decay"), default=0.0,
                       help="default 0")
    group.add_argument("--schedule", choices=SCHEDULES, default=schedule,
                       help=f"learning-rate schedule (default {schedule})")
    group.add_argument("--milestones", type=kind("milestones"), nargs="*", default=None,
                       help="epochs at which the 'step' schedule multiplies the lr by --gamma "
                            "(default: none; stereo on KITTI: 200, as published)")
    group.add_argument("--gamma", type=kind("gamma"), default=0.1, help="default 0.1")
    group.add_argument("--warmup-epochs", type=kind("warmup_epochs"), default=0.0,
                       help="linear warm-up of the cosine schedule, in epochs (default 0)")
    group.add_argument("--grad-clip", type=kind("grad_clip"), default=None,
                       help="clip the gradient norm to this positive value (default: no "
                            "clipping)")
    group.add_argument("--amp", choices=AMP_CHOICES, default="auto",
                       help="mixed precision: bf16 or fp16 on CUDA, bf16 on a CPU with native "
                            "bf16 (AVX-512 BF16 or AMX; elsewhere on the CPU it is refused), "
                            "or none (fp32). auto: bf16 for stereo training on a CPU with "
                            "native bf16 (checked to train as well as fp32), else none; the "
                            "run records what auto chose (default auto)")
    group.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False,
                       help="torch.compile the model (on the CPU it needs a C++ compiler and "
                            "takes about 20 s to start; default off)")
    group.add_argument("--seed", type=kind("seed"), default=0,
                       help="random seed, a whole number >= 0 (default 0)")
    add_device(group)
    group.add_argument("--resume", metavar="RUN_DIR",
                       help="continue this run exactly (default: start a new run)")
    group.add_argument("--config", metavar="FILE",
                       help="a run's config.json (or its run directory): its settings become "
                            "the defaults, so the run is reproduced; flags given override them")
    group.add_argument("--stop-after", type=POSITIVE_INT, metavar="EPOCHS",
                       help="stop after this many epochs; the schedule still plans for "
                            "--epochs and --resume continues (default: train to --epochs)")
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
        from cnnlab.classify.training import CLASSIFY
        return CLASSIFY
    from cnnlab.stereo.training.lab import STEREO
    return STEREO


def apply_config(parser: argparse.ArgumentParser, args: argparse.Namespace,
                 argv: list[str] | None) -> argparse.Namespace:
    """With ``--preset NAME`` and/or ``--config FILE``: parse again with the preset's, then the
    saved run's settings as the defaults of the train command, so that flags given on the
    command line still win."""
    from cnnlab.engine.lab import read_run_config

    if args.resume:
        raise ConfigError("--config/--preset and --resume: use one (--resume continues a run; "
                          "the others start a new one)")
    given: dict[str, tuple[Any, str]] = {}  # setting -> (value, the file or preset it is from)
    if getattr(args, "preset", None):
        values = args.presets(args.preset, args.dataset)
        args.command_parser.set_defaults(**values)
        given |= {k: (v, f"--preset {args.preset}") for k, v in values.items()}
    if getattr(args, "config", None):
        values = config_defaults(read_run_config(args.config, training_lab(args.lab)))
        args.command_parser.set_defaults(**values)
        given |= {k: (v, f"--config {args.config}") for k, v in values.items()}
    args = parser.parse_args(argv)
    args.from_files = given
    return args


def without_unused_from_files(run: Any, lab: Any, args: argparse.Namespace) -> Any:
    """``run`` without the settings a --config file or --preset gave that this run would not
    use (a cosine run from a step run's config keeps no milestones), each said in a note; a
    flag given on the command line that the run would not use is still refused."""
    from dataclasses import replace

    from cnnlab.engine.config import RunConfig

    from_files = getattr(args, "from_files", {})
    for item in lab.unused(run):
        part = "optim" if hasattr(run.optim, item.name) else "task"
        value = getattr(getattr(run, part), item.name)
        source = from_files.get(item.name)
        if source is None or source[0] != value:
            continue  # given on the command line: train_run refuses it
        default = getattr(type(getattr(run, part))(), item.name)
        shown = " ".join(map(str, value)) if isinstance(value, tuple) else value
        say(f"note: {_flag(item.name)} {shown} from {source[1]} left out: {item.why}")
        changed = replace(getattr(run, part), **{item.name: default})
        run = RunConfig(run.lab, changed if part == "task" else run.task,
                        changed if part == "optim" else run.optim)
    return run


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def run_training(args: argparse.Namespace, lab: Any, task_settings: Callable[[], Any],
                 default_out: str, log: Callable[[str], None] = print
                 ) -> tuple[dict[str, Any], Path, bool]:
    """The train command's steps: resume or a new run, torchrun's process group, train_run.
    Returns (results, run directory, whether this is the main process)."""
    from cnnlab.engine.config import RunConfig
    from cnnlab.engine.device import select_device
    from cnnlab.engine.distributed import cleanup, init_from_env
    from cnnlab.engine.lab import read_run_config, resumed_config, train_run
    from cnnlab.engine.session import default_run_folder

    if args.resume:
        ignored = _ignored_on_resume(args, lab)
        if ignored:
            applied = sorted(RESUME_OPTIONS - {"resume"} | set(lab.machine_settings))
            log(f"note: {', '.join(ignored)} ignored: a resumed run keeps the settings in "
                f"{Path(args.resume) / 'config.json'}; only "
                f"{', '.join('--' + k.replace('_', '-') for k in applied)} apply")
        machine = {k: getattr(args, k, None) for k in lab.machine_settings}
        machine.update({k: absolute(v, "--" + k.replace("_", "-")) for k, v in machine.items()
                        if k.endswith("_root") and v is not None})
        run = resumed_config(read_run_config(args.resume, lab), lab, args.epochs, machine)
        out = Path(args.resume)
    else:
        run = without_unused_from_files(
            RunConfig(lab.name, task_settings(), optim_from_args(args)), lab, args)
        out = Path(args.out) if args.out else default_run_folder(default_out, say)
    info = init_from_env(select_device(args.device).type)
    try:
        results = train_run(run, lab, out, bool(args.resume), args.device, info,
                            log if info.is_main else (lambda _msg: None),
                            not args.no_progress, args.stop_after,
                            getattr(args, "download", False))
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the finished epochs are kept
        if info.is_main and (out / "last.safetensors").is_file():
            log(f"Stopped: the last finished epoch is kept; continue with "
                f"cnnlab {lab.name} train --resume {out}")
        raise
    finally:
        cleanup(info)
    return results, out, info.is_main


# what may be given with --resume: the session's options, not the recipe's
RESUME_OPTIONS = {"resume", "epochs", "stop_after", "device", "no_progress", "download"}
# parser bookkeeping, not options
INTERNAL = {"func", "command_parser", "lab", "action", "default_epochs", "model_kwargs", "debug",
            "presets", "from_files", "whole_process"}


def _ignored_on_resume(args: argparse.Namespace, lab: Any) -> list[str]:
    """The flags given with --resume that the resumed run will not use."""
    parser = args.command_parser
    return sorted("--" + dest.replace("_", "-") for dest, value in vars(args).items()
                  if dest not in RESUME_OPTIONS | INTERNAL | set(lab.machine_settings)
                  and value != parser.get_default(dest))


def add_model_source(parser: argparse.ArgumentParser, lab: str, required: bool = True,
                     files: str = "a .safetensors file", when: str = "") -> None:
    """--checkpoint or --weights: where the network comes from (``required``: one of the two
    must be given, which each help says, since there is no default; ``when``: the condition
    under which one is required when argparse cannot enforce it)."""
    needed = "; this or --{} is required" + (f" {when}" if when else "")
    if not required and not when:
        needed = "; default: none"
    source = parser.add_mutually_exclusive_group(required=required)
    source.add_argument("--checkpoint", help="a run directory (its best, else last, checkpoint) "
                                             f"or {files}" + needed.format("weights"))
    source.add_argument("--weights", metavar="NAME",
                        help=f"registered weights by name (list them: cnnlab {lab} weights"
                             + needed.format("checkpoint") + ")")


def say(line: str) -> None:
    """A library's note on stderr, the parameters it names in backticks worded as flags."""
    print(CnnlabError(line).worded(_flags()), file=sys.stderr)


@functools.cache
def _flags() -> dict[str, str]:
    from cnnlab.cli import build_parser, flag_names

    return flag_names(build_parser())


def print_card(card: Any, heading: str) -> None:
    print(heading)
    for line in card.summary():
        print(f"  {line}")


def add_sweep_args(parser: argparse.ArgumentParser, example: str) -> None:
    """A sweep's own flags; the lab's train flags give the base recipe."""
    group = parser.add_argument_group("sweep (Optuna: TPE sampling, median pruning)")
    group.add_argument("--param", action="append", default=[], metavar="NAME=KIND:...",
                       help="a setting to search, repeatable: NAME=log:LOW:HIGH, "
                            "float:LOW:HIGH, int:LOW:HIGH or choice:A,B,... with NAME any "
                            f"train option (e.g. {example}) (default: the lab's space, "
                            "printed when the sweep starts)")
    group.add_argument("--space", metavar="FILE",
                       help='a JSON file {"lr": "log:1e-4:1e-1", ...} instead of --param '
                            "(default: none)")
    group.add_argument("--trials", type=POSITIVE_INT,
                       help="stop when this many trials have finished, completed or pruned, "
                            "counting earlier sessions and other processes (default: none)")
    group.add_argument("--minutes", type=POSITIVE,
                       help="stop starting trials after this many minutes (default: none; "
                            "give --trials, --minutes or both)")
    group.add_argument("--storage", metavar="URL",
                       help="an Optuna storage URL, e.g. sqlite:///sweep.db (default: a journal "
                            "file in the sweep folder; run the same command again to resume, "
                            "or in several processes at once)")


def run_sweep_command(args: argparse.Namespace, lab: Any, task_settings: Callable[[], Any],
                      default_space: tuple[str, ...], default_out: str) -> int:
    """The sweep command's steps: the base recipe from the train flags, the space, the study,
    the report."""
    from cnnlab.engine.config import RunConfig
    from cnnlab.engine.sweep import check_space, parse_param, read_space, run_sweep
    from cnnlab.engine.sweep_report import findings, summarize, write_sweep_report

    for flag, given in (("--resume", args.resume), ("--stop-after", args.stop_after)):
        if given:
            raise ConfigError(f"{flag}: not for a sweep; run the same sweep command again "
                              "with the same --out to resume it")
    if args.space and args.param:
        raise ConfigError("--space and --param: give the search space one way")
    space = (read_space(Path(args.space)) if args.space else
             [parse_param(text) for text in (args.param or default_space)])
    out = Path(args.out or default_out)
    base = without_unused_from_files(
        RunConfig(lab.name, task_settings(), optim_from_args(args)), lab, args)
    lab.check_sweep(base)
    check_space(space, base, lab)  # every value the space can draw, before anything starts
    print(f"Sweep into {out}: {lab.objective[1]} {lab.objective[0]} over "
          + ", ".join(str(p) for p in space))
    try:
        study = run_sweep(base, lab, space, out, args.trials, args.minutes, args.device,
                          args.storage)
    except KeyboardInterrupt:
        print(f"Stopped: run the same command again to resume the sweep in {out}",
              file=sys.stderr)
        raise
    summary = summarize(study, space, lab.objective[0])  # importances: computed once
    written = write_sweep_report(study, space, out, lab.objective[0], summary)
    for line in findings(summary):
        print(f"- {line}")
    print(f"Report: {written[0]}")
    return 0

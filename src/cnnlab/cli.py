"""Command line: parses arguments, calls library functions, prints. No logic worth testing."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from cnnlab.errors import CnnlabError, ConfigError


def _parse_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def _model_kwargs(pairs: list[str]) -> dict:
    kwargs = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"--model-arg {pair!r}: expected KEY=VALUE")
        key, value = pair.split("=", 1)
        kwargs[key.strip()] = _parse_value(value.strip())
    return kwargs


def _add_optim_args(parser: argparse.ArgumentParser, epochs: int, batch_size: int, lr: float,
                    optimizer: str = "adam", schedule: str = "constant") -> None:
    from cnnlab.engine.device import AMP_DTYPES
    from cnnlab.engine.optim import OPTIMIZERS, SCHEDULES

    group = parser.add_argument_group("optimisation")
    group.add_argument("--epochs", type=int, default=None,
                       help=f"epochs to train (default {epochs}; with --resume: the run's own, "
                            "or more to extend it)")
    parser.set_defaults(default_epochs=epochs)
    group.add_argument("--batch-size", type=int, default=batch_size)
    group.add_argument("--optimizer", choices=OPTIMIZERS, default=optimizer)
    group.add_argument("--lr", type=float, default=lr)
    group.add_argument("--momentum", type=float, default=0.9)
    group.add_argument("--weight-decay", type=float, default=0.0)
    group.add_argument("--schedule", choices=SCHEDULES, default=schedule)
    group.add_argument("--milestones", type=int, nargs="*", default=None,
                       help="epochs at which the 'step' schedule multiplies the lr by --gamma")
    group.add_argument("--gamma", type=float, default=0.1)
    group.add_argument("--warmup-epochs", type=float, default=0.0)
    group.add_argument("--grad-clip", type=float, default=None)
    group.add_argument("--amp", choices=list(AMP_DTYPES), default="none",
                       help="mixed precision on CUDA (ignored on CPU)")
    group.add_argument("--compile", action="store_true", help="torch.compile on CUDA")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--device", default="auto")
    group.add_argument("--resume", metavar="RUN_DIR", help="continue this run exactly")
    group.add_argument("--stop-after", type=int, metavar="EPOCHS",
                       help="stop after this many epochs; the schedule still plans for "
                            "--epochs and --resume continues")
    group.add_argument("--no-progress", action="store_true")


def _optim_config(args, saved: dict | None = None):
    """Optimisation settings from the flags, or, when resuming, the run's own settings (only
    --epochs may change, to extend a run): a resumed run must not switch optimizer silently."""
    from cnnlab.engine.loop import OptimConfig

    if saved is not None:
        settings = dict(saved, milestones=tuple(saved.get("milestones", ())))
        if args.epochs is not None:
            settings["epochs"] = args.epochs
        return OptimConfig(**settings)
    epochs = args.epochs if args.epochs is not None else args.default_epochs
    return OptimConfig(epochs=epochs, batch_size=args.batch_size, optimizer=args.optimizer,
                       lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
                       schedule=args.schedule, milestones=tuple(args.milestones or ()),
                       gamma=args.gamma, warmup_epochs=args.warmup_epochs,
                       grad_clip=args.grad_clip, amp=args.amp, compile=args.compile,
                       seed=args.seed)


# ---------------------------------------------------------------- classify

def cmd_classify_models(args) -> int:
    from cnnlab.classify.models import MODELS, create_model

    print(f"{'model':<14} {'input':>7} {'params':>13}  description")
    for name, entry in MODELS.items():
        params = sum(p.numel() for p in create_model(name).parameters())
        size = f"{entry.input_size}px" if entry.input_size else "native"
        print(f"{name:<14} {size:>7} {params:>13,}  {entry.description}")
    return 0


def cmd_classify_summary(args) -> int:
    from cnnlab.classify.models import create_model, get_entry
    from cnnlab.classify.summary import format_summary, layer_summary

    model = create_model(args.model, in_channels=args.channels, **_model_kwargs(args.model_arg))
    size = args.image_size or get_entry(args.model).input_size or 28
    rows = layer_summary(model, (1, args.channels, size, size))
    print(f"{args.model}, input 1x{args.channels}x{size}x{size}")
    print(format_summary(rows, sum(p.numel() for p in model.parameters())))
    return 0


def cmd_classify_train(args) -> int:
    from cnnlab.classify.train import ClassifyConfig, train_classifier
    from cnnlab.engine.device import select_device
    from cnnlab.engine.distributed import cleanup, init_from_env
    from cnnlab.engine.rundir import RunDir

    if args.resume:
        saved = RunDir(args.resume).read_config()
        optim = _optim_config(args, saved["optim"])
        config = ClassifyConfig.from_dict(saved["classify"])
        if args.data_root:
            config.data_root = args.data_root
        out = Path(args.resume)
    else:
        optim = _optim_config(args)
        config = ClassifyConfig(dataset=args.dataset, model=args.model,
                                model_kwargs=_model_kwargs(args.model_arg),
                                image_size=args.image_size, val_size=args.val_size,
                                translate=args.translate, hflip=args.hflip,
                                label_smoothing=args.label_smoothing, data_root=args.data_root)
        out = Path(args.out or f"runs/{args.model}-{args.dataset}")
        if (out / "last.safetensors").exists():
            raise ConfigError(f"{out}: already holds a run; use --resume {out} or another --out")
    info = init_from_env(select_device(args.device).type)
    try:
        results = train_classifier(config, optim, out, resume=bool(args.resume),
                                   device=args.device, download=args.download, info=info,
                                   progress=not args.no_progress, stop_after=args.stop_after,
                                   log=print if info.is_main else (lambda _msg: None))
    finally:
        cleanup(info)
    if info.is_main:
        print(f"Run directory: {out}")
    return 0 if results else 1


def _print_card(card, heading: str) -> None:
    print(heading)
    for line in card.summary():
        print(f"  {line}")


def _classify_source(args) -> str:
    """--weights NAME (checked against the registry) or --checkpoint PATH."""
    from cnnlab.classify.weights import get_weights

    return get_weights(args.weights).name if args.weights else args.checkpoint


def cmd_classify_eval(args) -> int:
    from cnnlab.classify.evaluate import evaluate_classifier

    result = evaluate_classifier(_classify_source(args), args.data_root, args.device,
                                 args.which, Path(args.out) if args.out else None, args.dataset)
    print(f"{result['model']} ({result['weights'] or result['checkpoint']}) on "
          f"{result['dataset']} test set: {result['correct']}/{result['count']} "
          f"({100 * result['accuracy']:.2f}%)")
    for name, accuracy in result["per_class_accuracy"].items():
        print(f"  {name:<12} {100 * accuracy:6.2f}%")
    print(f"Confusion matrix: {result['confusion_png']}")
    return 0


def cmd_classify_predict(args) -> int:
    from cnnlab.classify.predict import predict_files

    results, card = predict_files(_classify_source(args), [Path(p) for p in args.images],
                                  args.top_k, args.device)
    if args.json:
        print(json.dumps({"weights": card.name, "checkpoint": card.source.get("file"),
                          "predictions": results}, indent=2))
        return 0
    print(f"Weights: {card.name or card.source.get('file')} ({card.architecture}, "
          f"{len(card.outputs['classes'])} classes)", file=sys.stderr)
    for item in results:
        tops = ", ".join(f"{t['class']} {100 * t['probability']:.1f}%" for t in item["top"])
        print(f"{item['file']}: {tops}")
    return 0


def _size_text(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"


def cmd_classify_weights(args) -> int:
    from cnnlab.classify.weights import CLASSIFY_WEIGHTS, read_card

    print(f"{'name':<26} {'model':<12} {'dataset':<14} {'test acc':>9} {'size':>8}  file")
    for name, entry in CLASSIFY_WEIGHTS.items():
        path, status = entry.status()
        if path is None:
            print(f"{name:<26} {'':<12} {'':<14} {'':>9} {'':>8}  {status}")
            continue
        card = read_card(path)
        accuracy = next((m["values"]["accuracy"] for m in card.metrics
                         if "accuracy" in m.get("values", {})), None)
        shown = f"{100 * accuracy:.2f}%" if accuracy is not None else "-"
        print(f"{name:<26} {card.architecture:<12} {card.training.get('dataset', '?'):<14} "
              f"{shown:>9} {_size_text(path):>8}  {path}")
        if not args.brief:
            for line in card.summary():
                print(f"    {line}")
    return 0


def cmd_classify_weights_build(args) -> int:
    from cnnlab.classify.release import build_weights

    build_weights(args.name, args.data_root, Path(args.out), Path(args.run) if args.run else None,
                  args.device, progress=not args.no_progress)
    return 0


def _add_model_source(parser: argparse.ArgumentParser, lab: str, required: bool = True,
                      files: str = "a .safetensors file") -> None:
    source = parser.add_mutually_exclusive_group(required=required)
    source.add_argument("--checkpoint", help="a run directory (its best, else last, checkpoint) "
                                             f"or {files}")
    source.add_argument("--weights", metavar="NAME",
                        help=f"registered weights by name (list them: cnnlab {lab} weights)")


def _add_classify(sub) -> None:
    from cnnlab.data.vision import DATASETS

    classify = sub.add_parser("classify", help="image classification lab")
    csub = classify.add_subparsers(dest="action", required=True)

    models = csub.add_parser("models", help="list the model zoo with parameter counts")
    models.set_defaults(func=cmd_classify_models)

    summary = csub.add_parser("summary", help="per-layer output shapes and parameters")
    summary.add_argument("--model", required=True)
    summary.add_argument("--channels", type=int, default=1)
    summary.add_argument("--image-size", type=int)
    summary.add_argument("--model-arg", action="append", metavar="KEY=VALUE")
    summary.set_defaults(func=cmd_classify_summary)

    train = csub.add_parser("train", help="train a classifier")
    train.add_argument("--dataset", choices=list(DATASETS), default="fashion-mnist")
    train.add_argument("--model", default="simple_cnn")
    train.add_argument("--model-arg", action="append", metavar="KEY=VALUE",
                       help="model option, e.g. width=16 (repeatable)")
    train.add_argument("--image-size", type=int, help="override the model's input size")
    train.add_argument("--val-size", type=int, default=0,
                       help="carve a seeded validation split of this size from train "
                            "(0: validate on the test set)")
    train.add_argument("--translate", type=int, default=0, help="random shift in pixels")
    train.add_argument("--hflip", action="store_true", help="random horizontal flips")
    train.add_argument("--label-smoothing", type=float, default=0.0)
    train.add_argument("--data-root", help="folder holding MNIST/, FashionMNIST/, ... "
                                           "(default: $CNNLAB_DATA, then ~/.cache/cnnlab)")
    train.add_argument("--download", action="store_true", help="download missing files")
    train.add_argument("--out", help="run directory (default runs/MODEL-DATASET)")
    _add_optim_args(train, epochs=3, batch_size=128, lr=1e-3)
    train.set_defaults(func=cmd_classify_train)

    evaluate = csub.add_parser("eval", help="test accuracy, per-class accuracy, confusion matrix")
    _add_model_source(evaluate, "classify")
    evaluate.add_argument("--which", choices=("best", "last"), default="best",
                          help="checkpoint of a run directory (default best)")
    evaluate.add_argument("--dataset", choices=list(DATASETS),
                          help="test set to use (default: the one the model card names)")
    evaluate.add_argument("--data-root", help="folder holding the dataset (default: the run's, "
                                              "then $CNNLAB_DATA, then ~/.cache/cnnlab)")
    evaluate.add_argument("--out", help="folder for eval.json and confusion.png (default: the "
                                        "run directory; runs/eval/NAME for --weights)")
    evaluate.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N "
                                                           "(default auto)")
    evaluate.set_defaults(func=cmd_classify_eval)

    predict = csub.add_parser("predict", help="top-k classes of image files")
    _add_model_source(predict, "classify")
    predict.add_argument("images", nargs="+", help="PNG/JPEG files")
    predict.add_argument("--top-k", type=int, default=3, help="classes to show (default 3)")
    predict.add_argument("--json", action="store_true", help="print JSON instead of lines")
    predict.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N "
                                                          "(default auto)")
    predict.set_defaults(func=cmd_classify_predict)

    weights = csub.add_parser("weights", help="classifier weights shipped with cnnlab: list "
                                              "them, or rebuild one from its recipe")
    weights.add_argument("--brief", action="store_true", help="one line each, without the cards")
    weights.set_defaults(func=cmd_classify_weights)
    wsub = weights.add_subparsers(dest="weights_action")
    build = wsub.add_parser("build", help="train a shipped file's recipe, measure it on the "
                                          "official test set and write it in fp16 with its card")
    build.add_argument("name", help="registered weights name (see cnnlab classify weights)")
    build.add_argument("--data-root", help="folder holding MNIST/, FashionMNIST/ "
                                           "(default: $CNNLAB_DATA, then ~/.cache/cnnlab)")
    build.add_argument("--out", default="runs/weights",
                       help="folder for NAME.safetensors (default runs/weights; the shipped "
                            "copies live in src/cnnlab/classify/pretrained)")
    build.add_argument("--run", help="run directory (default runs/weights-NAME; resumed if "
                                     "it exists)")
    build.add_argument("--device", default="auto", help="default auto")
    build.add_argument("--no-progress", action="store_true", help="no progress bar")
    build.set_defaults(func=cmd_classify_weights_build)


# ---------------------------------------------------------------- basics

def cmd_basics_list(args) -> int:
    from cnnlab.basics.lessons import LESSONS

    for name, (_, description) in LESSONS.items():
        print(f"{name:<26} {description}")
    return 0


def cmd_basics_run(args) -> int:
    from cnnlab.basics.lessons import LESSONS, plot_lesson

    if args.name not in LESSONS:
        raise ConfigError(f"unknown lesson {args.name!r}; choose from {', '.join(LESSONS)}")
    result = LESSONS[args.name][0](seed=args.seed)
    print("\n".join(result.lines()))
    path = Path(args.out) / f"{args.name}.png"
    plot_lesson(result, path)
    print(f"Plot: {path}")
    return 0


def _add_basics(sub) -> None:
    basics = sub.add_parser("basics", help="from-scratch operators and autograd lessons")
    bsub = basics.add_subparsers(dest="action", required=True)
    bsub.add_parser("list", help="list the lessons").set_defaults(func=cmd_basics_list)
    run = bsub.add_parser("run", help="run one lesson, print its result, write its plot")
    run.add_argument("name")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--out", default="runs/basics", help="folder for the PNG")
    run.set_defaults(func=cmd_basics_run)


# ---------------------------------------------------------------- stereo

def _size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 256x512, got {text!r}") from None
    return height, width


def _blocks(text: str) -> tuple[int, ...]:
    try:
        blocks = tuple(int(v) for v in text.split(","))
    except ValueError:
        blocks = ()
    if len(blocks) != 4 or min(blocks) < 1:
        raise argparse.ArgumentTypeError(f"expected four positive counts like 3,16,3,3, "
                                         f"got {text!r}")
    return blocks


def _bool(text: str) -> bool:
    value = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    if text.lower() not in value:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return value[text.lower()]


def cmd_stereo_train(args) -> int:
    from cnnlab.engine.device import select_device
    from cnnlab.engine.distributed import cleanup, init_from_env
    from cnnlab.engine.rundir import RunDir
    from cnnlab.stereo.train import StereoConfig, published_milestones, train_stereo

    if args.milestones is None:
        args.milestones = published_milestones(args.dataset)
    if args.resume:
        saved = RunDir(args.resume).read_config()
        optim = _optim_config(args, saved["optim"])
        config = StereoConfig.from_dict(saved["stereo"])
        out = Path(args.resume)
    else:
        optim = _optim_config(args)
        model = {"variant": args.variant, "maxdisp": args.maxdisp, "blocks": args.blocks,
                 "align_corners": args.align_corners}
        config = StereoConfig(dataset=args.dataset, data_root=args.data_root,
                              model={k: v for k, v in model.items() if v is not None},
                              crop=args.crop, samples_per_epoch=args.samples_per_epoch,
                              val_count=args.val_count, jitter=not args.no_jitter,
                              synthetic_size=args.synthetic_size, init=args.init,
                              weights_root=args.weights_root)
        out = Path(args.out or f"runs/psmnet-{args.dataset}")
        if (out / "last.safetensors").exists():
            raise ConfigError(f"{out}: already holds a run; use --resume {out} or another --out")
    info = init_from_env(select_device(args.device).type)
    try:
        results = train_stereo(config, optim, out, bool(args.resume), args.device, info,
                               log=print if info.is_main else (lambda _msg: None),
                               progress=not args.no_progress, stop_after=args.stop_after)
    finally:
        cleanup(info)
    if info.is_main and "val" in results:
        print(f"Validation (last epoch): EPE {results['val']['epe']:.3f} px, "
              f"D1 {results['val']['d1']:.2f}%")
        print(f"Run directory: {out}")
    return 0


def _load_stereo(args, device):
    """The PSMNet of --weights or --checkpoint, its card printed."""
    from cnnlab.stereo.weights import get_weights, load_model

    if args.weights:
        get_weights(args.weights)  # a name, not a path: unknown names get the list
    model, card = load_model(args.weights or args.checkpoint, device, args.weights_root,
                             args.download, overrides={"align_corners": args.align_corners},
                             log=print)
    source = card.source
    verified = f", verified by {source['verified']}" if source.get("verified") else ""
    _print_card(card, f"Weights: {card.name or 'checkpoint'} ({source['file']}{verified})")
    return model, card


def cmd_stereo_eval(args) -> int:
    from cnnlab.engine.atomic import atomic_write_json
    from cnnlab.engine.device import select_device
    from cnnlab.stereo.datasets import SyntheticStereo, open_dataset
    from cnnlab.stereo.evaluate import (
        evaluate_samples,
        format_table,
        psmnet_predictor,
        sgbm_predictor,
    )
    from cnnlab.stereo.train import VAL_SEED

    device = select_device(args.device)
    predictors = {}
    maxdisp = args.maxdisp
    card = None
    if args.model in ("psmnet", "both"):
        if not (args.checkpoint or args.weights):
            raise ConfigError("--checkpoint or --weights is required to evaluate PSMNet")
        model, card = _load_stereo(args, device)
        predictors["psmnet"] = psmnet_predictor(model, card)
        maxdisp = maxdisp or card.kwargs["maxdisp"]
    if args.model in ("sgbm", "both"):
        predictors["sgbm"] = sgbm_predictor(maxdisp or 192)
    results = {}
    for dataset in args.dataset:
        if dataset == "synthetic":
            height, width = args.synthetic_size
            synthetic_max = 0.75 * (maxdisp or 192)
            source = SyntheticStereo(args.count, height, width, synthetic_max, seed=VAL_SEED)
        else:
            if not args.data_root:
                raise ConfigError(f"--data-root is required for {dataset}")
            source = open_dataset(dataset, args.data_root, args.split)
        samples = [source.load(i) for i in range(len(source))]
        for method, predict in predictors.items():
            print(f"{dataset} / {method}:")
            results[f"{dataset}/{method}"] = evaluate_samples(predict, samples, print)
    print(format_table(results))
    if args.json:
        payload = {"results": results, "card": card.to_dict() if card else None}
        atomic_write_json(Path(args.json), payload)
        print(f"Results: {args.json}")
    return 0


def cmd_stereo_predict(args) -> int:
    from cnnlab.engine.device import select_device
    from cnnlab.stereo.io import Calibration
    from cnnlab.stereo.predict import predict_pair

    if (args.focal is None) != (args.baseline is None):
        raise ConfigError("--focal and --baseline go together (or use --calib FILE)")
    calibration = Calibration(args.focal, args.baseline) if args.focal else None
    model, card = _load_stereo(args, select_device(args.device))
    result = predict_pair(model, card, Path(args.left), Path(args.right), Path(args.out),
                          calibration, Path(args.calib) if args.calib else None,
                          Path(args.gt) if args.gt else None)
    for note in result["notes"]:
        print(f"note: {note}", file=sys.stderr)
    low, high = result["disparity_range"]
    print(f"Disparity {result['size'][1]}x{result['size'][0]}: {low:.2f} to {high:.2f} px")
    if "metrics" in result:
        m = result["metrics"]
        print(f"Against ground truth: EPE {m['epe']:.3f} px, D1 {m['d1']:.2f}%, "
              f"bad-3 {m['bad3']:.2f}%")
    if "points" in result:
        print(f"Point cloud: {result['points']} points, "
              f"median depth {result['median_depth_m']:.2f} m")
    for name, path in result["outputs"].items():
        print(f"  {name}: {path}")
    return 0


def cmd_stereo_weights(args) -> int:
    from cnnlab.stereo.weights import STEREO_WEIGHTS, listing_card

    for name, entry in STEREO_WEIGHTS.items():
        path, status = entry.status(args.weights_root)
        print(f"{name:<22} {entry.description}")
        print(f"{'':<22} {status}; from {entry.origin}")
        if not args.brief:
            for line in listing_card(entry, path).summary():
                print(f"{'':<26}{line}")
    return 0


def cmd_stereo_weights_download(args) -> int:
    from cnnlab.engine.weights import resolve_weights
    from cnnlab.stereo.weights import check_official, get_weights

    entry = get_weights(args.name)
    path = resolve_weights(entry, args.weights_root, True, check_official, print)
    print(f"{entry.name}: {path} ({entry.checksum or 'structure checked'})")
    return 0


def cmd_stereo_weights_import(args) -> int:
    from cnnlab.stereo.weights import import_checkpoint

    path, card = import_checkpoint(args.file, Path(args.out), args.weights_root)
    _print_card(card, f"Imported {args.file} -> {path}")
    return 0


OFFICIAL_FILES = "a .safetensors or official PSMNet .tar file"


def _add_weights_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights-root", metavar="DIR",
                        help="folder holding PSMNet/<released file> or the file itself, searched "
                             "before $CNNLAB_WEIGHTS and ~/.cache/cnnlab/weights")
    parser.add_argument("--download", action="store_true",
                        help="fetch missing registered weights from their official source "
                             "(kept only if they verify)")
    parser.add_argument("--align-corners", type=_bool, metavar="true|false",
                        help="override the card's upsampling convention (default: the card's)")


def _add_stereo(sub) -> None:
    from cnnlab.stereo.models.psmnet import VARIANTS

    stereo = sub.add_parser("stereo", help="stereo matching lab (PSMNet)")
    ssub = stereo.add_subparsers(dest="action", required=True)
    datasets = ("synthetic", "sceneflow", "kitti2015", "kitti2012", "middlebury")

    train = ssub.add_parser("train", help="train or fine-tune PSMNet")
    train.add_argument("--dataset", choices=datasets, default="synthetic",
                       help="training data (default synthetic)")
    train.add_argument("--data-root", help="the dataset's folder or the data root holding it")
    arch = train.add_argument_group(
        "architecture (default: from --init's model card, else the values shown)")
    arch.add_argument("--variant", choices=VARIANTS, help="default stackhourglass")
    arch.add_argument("--maxdisp", type=int, help="disparity range, a multiple of 16 "
                                                  "(default 192)")
    arch.add_argument("--blocks", type=_blocks,
                      help="residual blocks of conv1_x..conv4_x (default 3,16,3,3)")
    arch.add_argument("--align-corners", type=_bool, metavar="true|false",
                      help="bilinear/trilinear upsampling convention (default true, the 2018 "
                           "official releases' convention; from scratch both train alike)")
    train.add_argument("--crop", type=_size, default=(256, 512),
                       help="training crop HxW (default 256x512)")
    train.add_argument("--samples-per-epoch", type=int, default=400, help="default 400")
    train.add_argument("--val-count", type=int, default=8, help="validation pairs (default 8)")
    train.add_argument("--synthetic-size", type=_size, default=(256, 512),
                       help="synthetic scene size HxW (default 256x512)")
    train.add_argument("--no-jitter", action="store_true", help="no photometric jitter")
    train.add_argument("--init", metavar="WEIGHTS",
                       help="fine-tune from registered weights (e.g. psmnet-kitti2015), a run "
                            "directory, a .safetensors checkpoint or an official .tar")
    train.add_argument("--weights-root", metavar="DIR",
                       help="where registered --init weights are found (see stereo weights)")
    train.add_argument("--out", help="run directory (default runs/psmnet-DATASET)")
    _add_optim_args(train, epochs=10, batch_size=4, lr=1e-3, schedule="step")
    train.set_defaults(func=cmd_stereo_train)

    evaluate = ssub.add_parser("eval", help="EPE / D1 / bad-x tables, PSMNet and/or SGBM")
    _add_model_source(evaluate, "stereo", required=False, files=OFFICIAL_FILES)
    _add_weights_options(evaluate)
    evaluate.add_argument("--model", choices=("psmnet", "sgbm", "both"), default="psmnet",
                          help="default psmnet")
    evaluate.add_argument("--dataset", choices=datasets, action="append", required=True,
                          help="repeatable")
    evaluate.add_argument("--data-root", help="the data root holding KITTI2015/, ... or a "
                                              "dataset's own folder")
    evaluate.add_argument("--split", default="all", help="train, val, test or all (default all)")
    evaluate.add_argument("--count", type=int, default=8, help="synthetic pairs (default 8)")
    evaluate.add_argument("--synthetic-size", type=_size, default=(256, 512),
                          help="default 256x512")
    evaluate.add_argument("--maxdisp", type=int, help="SGBM range (default: the model's or 192)")
    evaluate.add_argument("--json", help="write all results and the model card to this file")
    evaluate.add_argument("--device", default="auto", help="default auto")
    evaluate.set_defaults(func=cmd_stereo_eval)

    predict = ssub.add_parser("predict", help="disparity, depth and point cloud of a pair")
    predict.add_argument("left", help="left image (any 8/16-bit PNG or JPEG)")
    predict.add_argument("right", help="right image, same size, rectified")
    _add_model_source(predict, "stereo", files=OFFICIAL_FILES)
    _add_weights_options(predict)
    predict.add_argument("--out", default="runs/predict",
                         help="folder for the outputs (default runs/predict)")
    predict.add_argument("--focal", type=float, help="focal length in pixels")
    predict.add_argument("--baseline", type=float, help="baseline in metres")
    predict.add_argument("--calib", help="KITTI calib_cam_to_cam / calib or Middlebury calib.txt")
    predict.add_argument("--gt", help="ground-truth disparity (KITTI PNG or PFM) for an error map")
    predict.add_argument("--device", default="auto", help="default auto")
    predict.set_defaults(func=cmd_stereo_predict)

    weights = ssub.add_parser("weights", help="official PSMNet releases: where they are, their "
                                              "cards; download or import one")
    weights.add_argument("--weights-root", metavar="DIR",
                         help="search this folder first, then $CNNLAB_WEIGHTS and "
                              "~/.cache/cnnlab/weights")
    weights.add_argument("--brief", action="store_true", help="without the model cards")
    weights.set_defaults(func=cmd_stereo_weights)
    wsub = weights.add_subparsers(dest="weights_action")
    download = wsub.add_parser("download", help="fetch a release and keep it if it verifies")
    download.add_argument("name", help="registered weights name")
    download.add_argument("--weights-root", metavar="DIR", default=argparse.SUPPRESS,
                          help="download into this folder (default $CNNLAB_WEIGHTS, then "
                               "~/.cache/cnnlab/weights)")
    download.set_defaults(func=cmd_stereo_weights_download)
    imported = wsub.add_parser("import", help="convert an official .tar (or registered weights) "
                                              "into a cnnlab .safetensors with its model card")
    imported.add_argument("file", help="official .tar, or a registered name")
    imported.add_argument("--out", required=True, help="the .safetensors file to write")
    imported.add_argument("--weights-root", metavar="DIR", default=argparse.SUPPRESS,
                          help="where a registered name is found")
    imported.set_defaults(func=cmd_stereo_weights_import)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnlab", description=__doc__)
    sub = parser.add_subparsers(dest="lab", required=True)
    _add_classify(sub)
    _add_basics(sub)
    _add_stereo(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # epoch lines reach log files as they happen
    try:
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


if __name__ == "__main__":
    sys.exit(main())

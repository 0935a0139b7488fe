"""``cnnlab classify``: models, summary, train, eval, predict, weights."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cnnlab.classify.choices import DATASETS, MODELS, SWEEP_VAL_SIZE, TOP_K, WHICH
from cnnlab.cli.common import (
    POSITIVE_INT,
    absolute,
    add_device,
    add_model_source,
    add_optim_args,
    add_sweep_args,
    rule,
    run_sweep_command,
    run_training,
    settings_from_args,
)
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


def size_text(path: Path) -> str:
    size_bytes = path.stat().st_size
    return f"{size_bytes / 1e6:.1f} MB" if size_bytes >= 1e6 else f"{size_bytes / 1e3:.0f} kB"


def cmd_models(args) -> int:
    from cnnlab.classify.networks import MODELS, create_model

    print(f"{'model':<14} {'input':>7} {'params':>13}  description")
    for name, entry in MODELS.items():
        params = sum(p.numel() for p in create_model(name).parameters())
        shown = f"{entry.input_size}px" if entry.input_size else "native"
        print(f"{name:<14} {shown:>7} {params:>13,}  {entry.description}")
    return 0


def cmd_summary(args) -> int:
    from cnnlab.classify.networks import create_model, get_entry
    from cnnlab.classify.summary import format_summary, layer_summary

    model = create_model(args.model, in_channels=args.channels, **model_kwargs(args.model_arg))
    side = args.image_size or get_entry(args.model).input_size or 28
    rows = layer_summary(model, (1, args.channels, side, side))
    print(f"{args.model}, input 1x{args.channels}x{side}x{side}")
    print(format_summary(rows, sum(p.numel() for p in model.parameters())))
    return 0


def cmd_train(args) -> int:
    from cnnlab.classify.training import CLASSIFY

    results, out, is_main = run_training(args, CLASSIFY, lambda: _settings(args),
                                         f"runs/{args.model}-{args.dataset}")
    if is_main:
        print(f"Run directory: {out}")
    return 0 if results else 1


def _settings(args):
    from cnnlab.classify.training import ClassifyConfig

    # --config's model options (args.model_kwargs), then --model-arg over them
    options = {**args.model_kwargs, **model_kwargs(args.model_arg)}
    return settings_from_args(ClassifyConfig, args, model_kwargs=options,
                              data_root=absolute(args.data_root, "--data-root"))


def cmd_sweep(args) -> int:
    from cnnlab.classify.training import CLASSIFY

    return run_sweep_command(args, CLASSIFY, lambda: _settings(args), SWEEP_SPACE,
                             f"runs/sweep-{args.model}-{args.dataset}")


def _source(args) -> str:
    """--weights NAME (checked against the registry) or --checkpoint PATH."""
    from cnnlab.classify.weights import get_weights

    return get_weights(args.weights).name if args.weights else args.checkpoint


def cmd_eval(args) -> int:
    from cnnlab.classify.evaluate import evaluate_classifier

    result = evaluate_classifier(_source(args), args.data_root, args.device,
                                 args.which, Path(args.out) if args.out else None, args.dataset)
    print(f"{result['model']} ({result['weights'] or result['checkpoint']}) on "
          f"{result['dataset']} test set: {result['correct']}/{result['count']} "
          f"({100 * result['accuracy']:.2f}%)")
    for name, accuracy in result["per_class_accuracy"].items():
        print(f"  {name:<12} {100 * accuracy:6.2f}%")
    print(f"Confusion matrix: {result['confusion_png']}")
    return 0


def cmd_predict(args) -> int:
    from cnnlab.classify.predict import predict_files

    results, card = predict_files(_source(args), [Path(p) for p in args.images], args.top_k,
                                  args.device)
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


def cmd_weights(args) -> int:
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
              f"{shown:>9} {size_text(path):>8}  {path}")
        if not args.brief:
            for line in card.summary():
                print(f"    {line}")
    return 0


def cmd_weights_build(args) -> int:
    from cnnlab.classify.release import build_weights

    build_weights(args.name, args.data_root, Path(args.out), Path(args.run) if args.run else None,
                  args.device, progress=not args.no_progress)
    return 0


def _add_recipe_options(parser: argparse.ArgumentParser, val_size: int = 0) -> None:
    """What a classifier is trained on and how, besides the optimisation flags; each flag
    takes its setting's rule (``ClassifyConfig``)."""
    from cnnlab.classify.settings import ClassifyConfig

    parser.add_argument("--dataset", choices=list(DATASETS), default="fashion-mnist",
                        help="default fashion-mnist")
    parser.add_argument("--model", default="simple_cnn", choices=list(MODELS), metavar="MODEL",
                        help="one of: " + ", ".join(MODELS) + " (default simple_cnn; sizes and "
                             "parameters: cnnlab classify models)")
    parser.add_argument("--model-arg", action="append", metavar="KEY=VALUE",
                        help="model option, e.g. width=16 (repeatable; default: the model's "
                             "own)")
    parser.add_argument("--image-size", type=rule(ClassifyConfig, "image_size"),
                        help="override the model's input size (default: the model's)")
    shown = (f"{val_size}: a sweep selects on held-out training images, never the test set"
             if val_size else "0: validate on the test set")
    parser.add_argument("--val-size", type=rule(ClassifyConfig, "val_size"), default=val_size,
                        help="carve a seeded validation split of this size from train "
                             f"(default {shown})")
    parser.add_argument("--translate", type=rule(ClassifyConfig, "translate"), default=0,
                        help="random shift in pixels (default 0: off)")
    parser.add_argument("--hflip", action=argparse.BooleanOptionalAction, default=False,
                        help="random horizontal flips (default off)")
    parser.add_argument("--label-smoothing", type=rule(ClassifyConfig, "label_smoothing"),
                        default=0.0, help="in [0, 1) (default 0)")
    parser.add_argument("--data-root", help="folder holding MNIST/, FashionMNIST/, ... "
                                            "(default: $CNNLAB_DATA, then ~/.cache/cnnlab)")
    parser.add_argument("--download", action="store_true", help="download missing files")


# classify sweep: the held-out split trials are chosen on, and the default search space
SWEEP_SPACE = ("lr=log:3e-4:3e-2", "optimizer=choice:adam,sgd",
               "schedule=choice:constant,cosine,onecycle", "batch_size=choice:64,128,256",
               "weight_decay=float:0:5e-4", "label_smoothing=float:0:0.2",
               "translate=int:0:2")


def add_parser(sub) -> None:
    classify = sub.add_parser("classify", help="image classification lab")
    csub = classify.add_subparsers(dest="action", required=True)

    models = csub.add_parser("models", help="list the model zoo with parameter counts")
    models.set_defaults(func=cmd_models)

    summary = csub.add_parser("summary", help="per-layer output shapes and parameters")
    summary.add_argument("--model", required=True, choices=list(MODELS), metavar="MODEL",
                         help="one of: " + ", ".join(MODELS))
    summary.add_argument("--channels", type=POSITIVE_INT, default=1,
                         help="input channels (default 1)")
    summary.add_argument("--image-size", type=POSITIVE_INT,
                         help="input side (default: the model's, else 28)")
    summary.add_argument("--model-arg", action="append", metavar="KEY=VALUE",
                         help="model option, e.g. width=16 (repeatable; default: the model's own)")
    summary.set_defaults(func=cmd_summary)

    train = csub.add_parser("train", help="train a classifier")
    _add_recipe_options(train)
    train.add_argument("--out", help="run directory (default runs/MODEL-DATASET)")
    add_optim_args(train, epochs=3, batch_size=128, lr=1e-3)
    train.set_defaults(func=cmd_train, command_parser=train, model_kwargs={})

    sweep = csub.add_parser("sweep", help="search hyper-parameters with Optuna: every trial a "
                                          "run directory, a Markdown report of what helped "
                                          "(needs the 'sweep' extra)")
    _add_recipe_options(sweep, val_size=SWEEP_VAL_SIZE)
    sweep.add_argument("--out", help="sweep folder: trials, study, report (default "
                                     "runs/sweep-MODEL-DATASET)")
    add_optim_args(sweep, epochs=3, batch_size=128, lr=1e-3)
    add_sweep_args(sweep, "lr, optimizer, schedule, batch_size, weight_decay, "
                          "label_smoothing, translate, hflip, model")
    sweep.set_defaults(func=cmd_sweep, command_parser=sweep, model_kwargs={})

    evaluate = csub.add_parser("eval", help="test accuracy, per-class accuracy, confusion matrix")
    add_model_source(evaluate, "classify")
    evaluate.add_argument("--which", choices=WHICH.choices,
                          help="checkpoint of a run directory (default best)")
    evaluate.add_argument("--dataset", choices=list(DATASETS),
                          help="test set to use (default: the one the model card names)")
    evaluate.add_argument("--data-root", help="folder holding the dataset (default: the run's, "
                                              "then $CNNLAB_DATA, then ~/.cache/cnnlab)")
    evaluate.add_argument("--out", help="folder for eval.json and confusion.png (default: the "
                                        "run directory; runs/eval/NAME for --weights)")
    add_device(evaluate)
    evaluate.set_defaults(func=cmd_eval)

    predict = csub.add_parser("predict", help="top-k classes of image files")
    add_model_source(predict, "classify")
    predict.add_argument("images", nargs="+", help="PNG/JPEG files")
    predict.add_argument("--top-k", type=TOP_K, default=3,
                         help="classes to show, at most the model's (default 3)")
    predict.add_argument("--json", action="store_true", help="print JSON instead of lines")
    add_device(predict)
    predict.set_defaults(func=cmd_predict)

    weights = csub.add_parser("weights", help="classifier weights shipped with cnnlab: list "
                                              "them, or rebuild one from its recipe")
    weights.add_argument("--brief", action="store_true", help="one line each, without the cards")
    weights.set_defaults(func=cmd_weights)
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
    add_device(build)
    build.add_argument("--no-progress", action="store_true", help="no progress bar")
    build.set_defaults(func=cmd_weights_build)


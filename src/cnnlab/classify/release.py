"""Reproduce a shipped classifier file: train with its recipe, measure, write fp16 + card.

``cnnlab classify weights build NAME --data-root DATA`` trains (or resumes) the run
``runs/weights-NAME`` with ``RECIPES[NAME]``, rounds the last epoch's weights to fp16 (the
shipped format: half the size, accuracy unchanged within a few test images), measures those
rounded weights on the full official test set and writes ``NAME.safetensors`` whose card
states that accuracy and the command that made it, and its line in ``SHA256SUMS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from cnnlab.classify.card import build_classifier, preprocess_of
from cnnlab.classify.data import TensorSplit
from cnnlab.classify.evaluate import confusion_matrix
from cnnlab.classify.training import CLASSIFY, ClassifyConfig
from cnnlab.classify.weights import RECIPES, get_weights
from cnnlab.data.download import file_digest
from cnnlab.data.vision import load_split
from cnnlab.engine.atomic import check_writable_file, check_writable_folder
from cnnlab.engine.checkpoint import load_checkpoint, save_checkpoint
from cnnlab.engine.config import RunConfig
from cnnlab.engine.device import select_device
from cnnlab.engine.lab import read_run_config, recipe_of, train_run
from cnnlab.engine.rundir import RunDir
from cnnlab.engine.weights import update_sha256sums
from cnnlab.errors import ConfigError


def recipe_run(name: str, data_root: str | None) -> RunConfig:
    """The run that makes shipped file ``name``, reading its data from ``data_root``."""
    recipe = RECIPES[get_weights(name).name]
    run = RunConfig.from_dict({"lab": "classify", **recipe}, "classify", ClassifyConfig,
                              f"recipe {name}")
    run.task.data_root = data_root
    return run


def to_fp16(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating tensors as fp16 (BN counters stay integers)."""
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}


def build_weights(name: str, data_root: str | None, out_dir: Path, run_dir: Path | None = None,
                  device: str = "auto", log: Callable[[str], None] = print,
                  progress: bool = True) -> dict:
    """Train ``name``'s recipe (resuming its run dir if present), then write the shipped file."""
    recipe = recipe_run(name, data_root)
    if recipe.optim.amp == "auto":  # the card records what trains, as train_run resolves it
        recipe = replace(recipe, optim=replace(recipe.optim,
                                               amp=CLASSIFY.auto_amp(select_device(device))))
    config, optim = recipe.task, recipe.optim
    run = Path(run_dir or Path("runs") / f"weights-{name}")
    resume = RunDir(run).checkpoint("last").is_file()
    card = CLASSIFY.card(recipe)
    out_dir = check_writable_folder(Path(out_dir).expanduser(), "out")  # before any training
    for written in (out_dir / f"{name}.safetensors", out_dir / "SHA256SUMS"):
        check_writable_file(written, "out")
    check_writable_folder(run, "run")
    if resume:  # only the recipe's own run may be finished; anything else would be mislabelled
        try:
            same = recipe_of(read_run_config(run, CLASSIFY), CLASSIFY) == recipe_of(recipe,
                                                                                  CLASSIFY)
        except ConfigError:
            same = False
        if not same:
            raise ConfigError(f"{run}: holds a run with other settings than the {name} recipe; "
                              "remove it or choose another folder", parameter="run")
    train_run(recipe, CLASSIFY, run, resume=resume, device=device, log=log, progress=progress)
    torch_device = select_device(device)
    state = to_fp16(load_checkpoint(RunDir(run).checkpoint("last"))["model"])
    model = build_classifier(card)
    model.load_state_dict(state)
    model.to(torch_device).eval()
    images, labels = load_split(config.dataset, "test", data_root)
    matrix = confusion_matrix(model, TensorSplit(images, labels, torch_device),
                              preprocess_of(card), len(card.outputs["classes"]))
    correct, count = int(matrix.diag().sum()), int(matrix.sum())
    training = {k: v for k, v in card.training.items() if k != "data_root"}
    training.update(command=f"cnnlab classify weights build {name} --data-root DATA",
                    epochs_trained=optim.epochs, selection="last epoch (no test-set selection)")
    card = card.with_changes(
        name=name, training=training,
        metrics=[{"data": f"{config.dataset} official test set ({count:,} images)",
                  "values": {"accuracy": correct / count, "correct": correct, "count": count},
                  "note": "the shipped fp16 weights, computed in fp32"}],
        source={"format": "cnnlab safetensors, fp16", "origin": "shipped with cnnlab"})
    path = save_checkpoint(Path(out_dir) / f"{name}.safetensors", state,
                           {"card": card.to_dict()}, sidecar=False)
    digest = file_digest(path, "sha256")
    update_sha256sums(Path(out_dir) / "SHA256SUMS", path.name, digest)
    result = {"name": name, "file": str(path), "sha256": digest,
              "bytes": path.stat().st_size, "accuracy": correct / count, "correct": correct,
              "count": count}
    log(f"{name}: test accuracy {correct}/{count} ({100 * correct / count:.2f}%) with fp16 "
        f"weights; wrote {path} ({result['bytes']:,} bytes, sha256 {result['sha256']})")
    return result

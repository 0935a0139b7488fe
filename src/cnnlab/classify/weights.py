"""Classifier weights: the ones shipped inside cnnlab, and ``load_model`` for any checkpoint.

Shipped files are fp16 safetensors with their model card in the header, trained by cnnlab's
own recipes (``RECIPES``) and checked against ``pretrained/SHA256SUMS``; ``cnnlab classify
weights build NAME`` reproduces one and updates its line there. They need no data and no
network: ``cnnlab classify predict --weights simple_cnn-mnist digit.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.classify.card import build_classifier, classifier_card, validated
from cnnlab.engine.card import ModelCard, card_of_checkpoint
from cnnlab.engine.checkpoint import load_checkpoint, load_model_weights, read_metadata
from cnnlab.engine.weights import (
    Weights,
    locate_weights,
    read_sha256sums,
    registered,
    sourced,
)

PACKAGE_DIR = Path(__file__).resolve().parent / "pretrained"

# Recipes: the non-default settings of `cnnlab classify train` that made each shipped file.
# Weights are the last epoch's (no selection on the test set).
_ONECYCLE_ADAM = {"optimizer": "adam", "schedule": "onecycle", "batch_size": 128}
_ONECYCLE_SGD = {"optimizer": "sgd", "lr": 0.1, "weight_decay": 5e-4, "schedule": "onecycle",
                 "batch_size": 128}
RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "simple_cnn-mnist": {"classify": {"dataset": "mnist", "model": "simple_cnn", "translate": 2},
                         "optim": {**_ONECYCLE_ADAM, "lr": 3e-3, "epochs": 10}},
    "simple_cnn-fashion-mnist": {
        "classify": {"dataset": "fashion-mnist", "model": "simple_cnn", "hflip": True},
        "optim": {**_ONECYCLE_ADAM, "lr": 3e-3, "epochs": 20}},
    "resnet18-mnist": {
        "classify": {"dataset": "mnist", "model": "resnet18", "model_kwargs": {"width": 16},
                     "translate": 2, "label_smoothing": 0.1},
        "optim": {**_ONECYCLE_SGD, "epochs": 4}},
    "resnet18-fashion-mnist": {
        "classify": {"dataset": "fashion-mnist", "model": "resnet18",
                     "model_kwargs": {"width": 16}, "translate": 2, "hflip": True,
                     "label_smoothing": 0.1},
        "optim": {**_ONECYCLE_SGD, "epochs": 8}},
    "lenet5-mnist": {"classify": {"dataset": "mnist", "model": "lenet5", "translate": 2},
                     "optim": {**_ONECYCLE_ADAM, "lr": 3e-3, "epochs": 10}},
    "lenet5-fashion-mnist": {
        "classify": {"dataset": "fashion-mnist", "model": "lenet5", "hflip": True},
        "optim": {**_ONECYCLE_ADAM, "lr": 3e-3, "epochs": 15}},
    "mlp-mnist": {"classify": {"dataset": "mnist", "model": "mlp"},
                  "optim": {**_ONECYCLE_ADAM, "lr": 3e-3, "epochs": 15}},
    "mlp-fashion-mnist": {"classify": {"dataset": "fashion-mnist", "model": "mlp"},
                          "optim": {**_ONECYCLE_ADAM, "lr": 3e-3, "epochs": 15}},
}

# sha256 of each shipped file, written by `cnnlab classify weights build` beside the files
MANIFEST = PACKAGE_DIR / "SHA256SUMS"
_SHA256 = read_sha256sums(MANIFEST)


def _shipped(name: str) -> Weights:
    recipe = RECIPES[name]["classify"]
    return Weights(
        name=name, file_name=f"{name}.safetensors",
        description=f"{recipe['model']} trained on {recipe['dataset']} by cnnlab",
        origin=f"shipped with cnnlab; rebuild with `cnnlab classify weights build {name}`",
        sha256=_SHA256.get(f"{name}.safetensors"), packaged=PACKAGE_DIR / f"{name}.safetensors")


CLASSIFY_WEIGHTS: dict[str, Weights] = {name: _shipped(name) for name in RECIPES}


def get_weights(name: str) -> Weights:
    return registered(CLASSIFY_WEIGHTS, name, "classifier")


def _legacy_card(config: dict) -> ModelCard:
    """The card of a run written before cards existed, from its saved configuration."""
    saved = config["classify"]
    training = {"recipe": {k: config.get(k) for k in ("classify", "optim")}}
    if saved.get("data_root"):
        training["data_root"] = saved["data_root"]
    return classifier_card(saved["dataset"], saved["model"], saved.get("model_kwargs", {}),
                           saved.get("image_size"), training)


def card_from_metadata(metadata: dict, where: str) -> ModelCard:
    return validated(card_of_checkpoint(metadata, "classify", where, _legacy_card), where)


def read_card(path: str | Path) -> ModelCard:
    """A checkpoint's card from its header, without loading the tensors."""
    return card_from_metadata(read_metadata(Path(path)), str(path))


def load_model(name_or_path: str | Path, device: str | torch.device = "cpu",
               which: str = "best") -> tuple[nn.Module, ModelCard]:
    """(model in eval mode on ``device``, its card) from registered weights or a checkpoint."""
    path, entry = locate_weights(name_or_path, CLASSIFY_WEIGHTS, which=which)
    checkpoint = load_checkpoint(path, map_location="cpu")
    card = card_from_metadata(checkpoint["metadata"], str(path))
    model = build_classifier(card, str(path))
    load_model_weights(model, checkpoint["model"], path)  # fp16 files load into fp32 params
    return model.to(device).eval(), sourced(card, path, entry)

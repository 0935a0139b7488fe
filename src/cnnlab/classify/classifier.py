"""A trained classifier as a notebook uses it: ``load`` a checkpoint, registered weights or a
student's network, then ``predict`` images and ``evaluate`` on a dataset."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from cnnlab.classify.card import build_classifier
from cnnlab.classify.choices import WHICH
from cnnlab.classify.evaluate import (
    Evaluation,
    check_dataset,
    evaluate_network,
    picks_a_run_folder,
)
from cnnlab.classify.predict import Predictions, predict_images
from cnnlab.classify.weights import CLASSIFY_WEIGHTS, card_from_metadata
from cnnlab.data.vision import load_split
from cnnlab.engine.card import ModelCard
from cnnlab.engine.checkpoint import load_checkpoint, load_model_weights
from cnnlab.engine.device import select_device
from cnnlab.engine.network import rebuilt_network
from cnnlab.engine.options import effective_when, when
from cnnlab.engine.rules import checked
from cnnlab.engine.weights import locate_weights, sourced


class Classifier:
    """A network with its model card (classes, input size, normalisation): what ``load``
    returns and a training ``Run`` holds."""

    def __init__(self, network: nn.Module, card: ModelCard, name: str = ""):
        self.network, self.card = network, card
        self.name = name or card.name or card.architecture

    @property
    def classes(self) -> list[str]:
        return list(self.card.outputs["classes"])

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def predict(self, images: object, *, top_k: int = 3) -> Predictions:
        """Top-``top_k`` classes of image files, PIL images or uint8 arrays (one or a list);
        light-background grey pictures are inverted to look like MNIST-style data."""
        return predict_images(self.network, self.card, images, top_k)

    def evaluate(self, dataset: str | None = None, *, split: str = "test",
                 data_root: str | os.PathLike | None = None, limit: int | None = None,
                 download: bool = False) -> Evaluation:
        """Accuracy, confusion matrix and mistakes on a dataset's ``split`` (the card's
        dataset and its official test set by default; ``limit``: its first images only)."""
        from cnnlab.classify.data import first

        dataset = check_dataset(self.card, dataset, self.name)
        root = data_root if data_root is not None else self.card.training.get("data_root")
        images, labels = first(load_split(dataset, split, root, download), limit, "limit")
        return evaluate_network(self.network, self.card, images, labels,
                                f"{self.name} on {dataset} {split}")

    def summary(self) -> str:
        return "\n".join(self.card.summary())

    def __repr__(self) -> str:
        parameters = sum(p.numel() for p in self.network.parameters())
        pre = self.card.preprocess
        label = self.card.architecture + (f" '{self.name}'" if self.name != self.card.architecture
                                          else "")
        return (f"Classifier({label}: {parameters:,} parameters, {len(self.classes)} "
                f"classes, {pre['channels']}x{pre['size']}x{pre['size']} input, on "
                f"{self.device})")


@checked(which=WHICH)
@effective_when(
    which=when(lambda v: v["which"] == "best" or picks_a_run_folder(v["name_or_path"]),
               "picks a run folder's checkpoint; `name_or_path` names registered weights or a "
               "file, so it changes nothing"),
    weights_root=when(lambda v: v["name_or_path"] in CLASSIFY_WEIGHTS,
                      "only for registered weights by name; `name_or_path` names a file or "
                      "folder, so it changes nothing"))
def load(name_or_path: str | os.PathLike, *, model: object = None, which: str = "best",
         device: str = "auto", weights_root: str | os.PathLike | None = None) -> Classifier:
    """A trained classifier from registered weights ("lenet5-mnist"), a run folder (its
    ``which`` checkpoint: "best" or "last") or a checkpoint file. Weights of a network
    defined in Python need its class (or an instance): ``load(path, model=LeNet)``."""
    torch_device = select_device(device)
    path, entry = locate_weights(name_or_path, CLASSIFY_WEIGHTS, weights_root, which=which)
    checkpoint = load_checkpoint(path, map_location="cpu")
    card = card_from_metadata(checkpoint["metadata"], str(path))
    if card.module is None:
        network = build_classifier(card, str(path))
    else:
        network = rebuilt_network(model, card.architecture, card.module, str(path))
    load_model_weights(network, checkpoint["model"], path)  # fp16 files load into fp32 params
    network = network.to(torch_device).eval()
    card = sourced(card, path, entry)
    name = entry.name if entry else (Path(path).parent.name if Path(path).stem in ("best", "last")
                                     else Path(path).stem)
    return Classifier(network, card, name)

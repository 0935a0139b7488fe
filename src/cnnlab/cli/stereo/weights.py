"""``cnnlab stereo export`` and ``weights``: ONNX export (``cnnlab.stereo.inference.export``)
and the official releases (``cnnlab.stereo.weights.registry``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnlab.cli.common import (
    add_model_source,
    print_card,
    size,
)
from cnnlab.cli.stereo.shared import (
    OFFICIAL_FILES,
    add_weights_options,
    add_weights_root,
    model_spec,
    shown,
)
from cnnlab.stereo.choices import (
    EXPORT_MAX_SIZE,
    EXPORT_MIN_SIZE,
)


def cmd_export(args) -> int:
    from cnnlab.stereo.inference.export import export_model

    written = export_model(model_spec(args, "to export", device="cpu"), args.out, args.min_size,
                           args.max_size, check=not args.no_check, log=print)
    print(f"Exported {written['file']} in {written['export_seconds']} s")
    for row in written.get("parity", []):
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


def add_export_parser(ssub) -> None:
    export = ssub.add_parser("export", help="PSMNet as ONNX with dynamic height and width "
                                            "(needs the 'export' extra)")
    add_model_source(export, "stereo", files=OFFICIAL_FILES)
    add_weights_options(export)
    export.add_argument("--format", choices=("onnx",), default="onnx",
                        help="file format (default onnx, the only one so far)")
    export.add_argument("--out", required=True, help="the .onnx file to write")
    export.add_argument("--min-size", type=size, default=EXPORT_MIN_SIZE,
                        help="smallest HxW the file accepts, multiples of 16, at least "
                             f"{shown(EXPORT_MIN_SIZE)} (default {shown(EXPORT_MIN_SIZE)})")
    export.add_argument("--max-size", type=size, default=EXPORT_MAX_SIZE,
                        help=f"largest HxW, multiples of 16 (default {shown(EXPORT_MAX_SIZE)}: "
                             "KITTI's 384x1248 and SceneFlow's 544x960 lie between)")
    export.add_argument("--no-check", action="store_true",
                        help="skip comparing ONNX Runtime with PyTorch at two sizes")
    export.set_defaults(func=cmd_export)


def add_weights_parser(ssub) -> None:
    weights = ssub.add_parser("weights", help="official PSMNet releases: where they are, their "
                                              "cards; download or import one")
    add_weights_root(weights, "search this folder first, then {} (default: only "
                              "those)")
    weights.add_argument("--brief", action="store_true", help="without the model cards")
    weights.set_defaults(func=cmd_weights)
    wsub = weights.add_subparsers(dest="weights_action")
    download = wsub.add_parser("download", help="fetch a release and keep it if it verifies")
    download.add_argument("name", help="registered weights name")
    add_weights_root(download, "download into this folder (default {})", default=argparse.SUPPRESS)
    download.set_defaults(func=cmd_weights_download)
    imported = wsub.add_parser("import", help="convert an official .tar (or registered weights) "
                                              "into a cnnlab .safetensors with its model card")
    imported.add_argument("file", help="official .tar, or a registered name")
    imported.add_argument("--out", required=True, help="the .safetensors file to write")
    add_weights_root(imported, "where a registered name is found, before {} (default: only those)",
                     default=argparse.SUPPRESS)
    imported.set_defaults(func=cmd_weights_import)

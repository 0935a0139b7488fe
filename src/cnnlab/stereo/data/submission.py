"""KITTI's submission format: ``disp_0/NNNNNN_10.png`` (16-bit, disparity x 256, 0 = no value),
one per test pair, zipped with ``disp_0/`` at the archive's root as the evaluation server
expects (KITTI 2015: 200 test pairs; KITTI 2012: 195)."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np

from cnnlab.engine.atomic import atomic_write
from cnnlab.errors import DataError
from cnnlab.stereo.data.io import write_kitti_disparity

NAME = re.compile(r"^\d{6}_10$")
TEST_PAIRS = {"KITTI 2015": 200, "KITTI 2012": 195}
FOLDER = "disp_0"


def check_submission_names(stems: list[str]) -> None:
    """Every pair must be named as KITTI's test frames are (NNNNNN_10), once."""
    for stem in stems:
        if not NAME.match(stem):
            raise DataError(f"{stem}: not a KITTI test frame name (NNNNNN_10); "
                            "`kitti_submission` needs image_2/NNNNNN_10.png pairs")
    seen = set()
    for stem in stems:
        if stem in seen:
            raise DataError(f"{stem}: given twice for the submission")
        seen.add(stem)


def write_submission_png(folder: Path, stem: str, disparity: np.ndarray,
                         valid: np.ndarray | None = None) -> Path:
    """``folder/disp_0/<stem>.png`` (atomically): what the server decodes as value / 256."""
    return write_kitti_disparity(Path(folder) / FOLDER / f"{stem}.png", disparity, valid)


def archive_path(folder: Path) -> Path:
    """Where the zip goes: beside the folder, named after it (``DIR`` -> ``DIR.zip``)."""
    folder = Path(folder).absolute()
    if not folder.name or folder.name in (".", ".."):
        folder = folder.resolve()
    if not folder.name:
        raise DataError(f"{folder}: give a folder with a name (the zip is "
                        "written beside it as NAME.zip)", parameter="kitti_submission")
    return folder.with_name(folder.name + ".zip")


def zip_submission(folder: Path, written: list[Path]) -> tuple[Path, list[str]]:
    """``folder.zip`` holding the ``written`` maps as ``disp_0/*.png`` (atomically), and notes:
    maps in the folder from an earlier run (left out of the zip) and a count that is not a
    full test set."""
    folder = Path(folder)
    archive = archive_path(folder)
    names = {Path(path).name for path in written}

    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as handle:
            for path in sorted(written):
                handle.write(path, f"{FOLDER}/{Path(path).name}")

    atomic_write(archive, write)
    notes = []
    stale = [p for p in (folder / FOLDER).glob("*.png") if p.name not in names]
    if stale:
        notes.append(f"{folder / FOLDER}: {len(stale)} maps from an earlier run (e.g. "
                     f"{stale[0].name}) are not in {archive.name}")
    if len(written) not in TEST_PAIRS.values():
        expected = " or ".join(f"{n} ({name})" for name, n in TEST_PAIRS.items())
        notes.append(f"{archive}: {len(written)} disparity maps; the server expects a full "
                     f"test set of {expected}")
    return archive, notes

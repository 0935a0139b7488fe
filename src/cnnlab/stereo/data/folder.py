"""Users' own stereo pairs: from glob patterns or a list file, with ground truth optional.

Glob patterns pair files by what their wildcards match, not by sort order: ``scenes/*/left/*.png``
and ``scenes/*/right/*.png`` pair the files whose two wildcards match the same text. Ground truth
is PFM, KITTI 16-bit PNG, .npy or 8-bit scaled PNG/PGM (Middlebury 2001/2003). Its scale follows
Middlebury: the stored value is disparity x ``gt_scale``, so every format's decoded value is
divided by ``gt_scale`` (1 by default: the value is the disparity).
"""

from __future__ import annotations

import math
import os
import re
import shlex
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from cnnlab.data.image import SIXTEEN_BIT_MODES
from cnnlab.errors import ConfigError, DataError, shown_path
from cnnlab.stereo.choices import FOLDER_OPTIONS as FOLDER_OPTIONS  # where they always were
from cnnlab.stereo.choices import GT_FORMATS
from cnnlab.stereo.choices import check_folder_options as check_folder_options
from cnnlab.stereo.data.datasets import FileStereoDataset, StereoSample, _Entry
from cnnlab.stereo.data.io import (
    read_image,
    read_kitti_disparity,
    read_pfm_disparity,
    read_scaled_disparity,
)

# (name, left, right, ground truth or None)
Pair = tuple[str, Path, Path, Path | None]


def _check_gt_options(gt_format: str, gt_scale: float) -> None:
    if gt_format not in GT_FORMATS:
        raise ConfigError(f"{gt_format}: choose from {', '.join(GT_FORMATS)}",
                          parameter="gt_format")
    try:
        scale = float(gt_scale)
    except (TypeError, ValueError):
        scale = math.nan
    if not (math.isfinite(scale) and scale > 0):
        raise ConfigError(f"{gt_scale}: expected a positive number (the stored "
                          "ground-truth value is disparity x scale)", parameter="gt_scale")


def _is_sixteen_bit(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            return image.mode in SIXTEEN_BIT_MODES
    except (OSError, ValueError, Image.DecompressionBombError):
        return False  # the 8-bit reader opens it again and names the problem


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".pfm", ".npy"):
        return suffix[1:]
    if suffix == ".png" and _is_sixteen_bit(path):
        return "kitti"
    if suffix in (".png", ".pgm"):
        return "png8"
    raise DataError(f"{path}: cannot tell the ground-truth format from the suffix "
                    f"{path.suffix or '(none)'}; pass `gt_format` (pfm, kitti, npy or png8)")


def _read_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npy array ({exc})") from None
    if not isinstance(array, np.ndarray):  # an .npz archive
        array.close()
        raise DataError(f"{path}: an .npz archive, expected one 2-D array saved with np.save")
    if array.ndim != 2 or array.dtype.kind not in "iuf":
        raise DataError(f"{path}: array of shape {array.shape} and dtype {array.dtype}, expected "
                        "a 2-D numeric (H, W) disparity map")
    return array


def read_ground_truth(path: str | Path, gt_format: str = "auto",
                      gt_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) disparity float32 (0 where unknown) and valid mask (finite and > 0), with the
    format's own decoding (KITTI's / 256) and then / ``gt_scale``; "auto" goes by suffix."""
    _check_gt_options(gt_format, gt_scale)
    path = Path(path)
    kind = _format_of(path) if gt_format == "auto" else gt_format
    if kind == "png8" and gt_format == "auto" and gt_scale == 1:
        # 8-bit disparity maps are nearly always scaled (Middlebury: 4, 8 or 16): read with
        # scale 1 they would score silently wrong
        raise DataError(f"{path}: 8-bit ground truth; give its `gt_scale` (the stored value "
                        "is disparity x scale: Middlebury 2001 8 or 16, 2003 4), or "
                        "`gt_format` png8 if the values are the disparities")
    if kind == "png8":  # read_scaled_disparity divides by the scale itself
        values, valid = read_scaled_disparity(path, gt_scale)
        return _scorable(path, values, valid)
    if kind == "pfm":
        values = read_pfm_disparity(path)[0]
    elif kind == "kitti":
        values = read_kitti_disparity(path)[0]
    else:
        values = _read_npy(path)
    values = np.asarray(values, dtype=np.float64)
    if gt_scale != 1:
        values = values / gt_scale
    valid = np.isfinite(values) & (values > 0)
    return _scorable(path, np.where(valid, values, 0).astype(np.float32), valid)


def _scorable(path: Path, values: np.ndarray, valid: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """A ground truth with at least one valid pixel: one with none would score any prediction
    as perfect (EPE 0 on 0 pixels), so it is refused as the wrong file it nearly always is."""
    if not valid.any():
        raise DataError(f"{path}: ground truth with no valid pixel (every value is 0, negative "
                        "or not finite); nothing to score against")
    return values, valid


def _read_for_dataset(gt_format: str, path: Path, scale: float) -> tuple[np.ndarray, np.ndarray]:
    return read_ground_truth(path, gt_format, scale)  # module level: DataLoader workers pickle it


class FolderStereo(FileStereoDataset):
    """Users' pairs from ``folder_from_globs`` or ``folder_from_list``; ``load(i)`` needs ground
    truth, ``load_views(i)`` reads the images alone (for prediction)."""

    name = "folder"

    def __init__(self, pairs: list[Pair], gt_format: str = "auto", gt_scale: float = 1.0):
        _check_gt_options(gt_format, gt_scale)
        entries = [_Entry(name, left, right, gt, scale=gt_scale)
                   for name, left, right, gt in pairs]
        super().__init__(entries, partial(_read_for_dataset, gt_format))
        self.gt_format, self.gt_scale = gt_format, gt_scale
        self.has_ground_truth = bool(entries) and all(e.disparity is not None for e in entries)

    @property
    def pairs(self) -> list[Pair]:
        """(name, left, right, ground truth or None) per pair, for callers that need paths."""
        return [(e.name, e.left, e.right, e.disparity) for e in self.entries]

    def load_views(self, index: int) -> tuple[str, np.ndarray, np.ndarray]:
        """(name, left, right): pair ``index``'s (H, W, 3) uint8 images, no ground truth read."""
        entry = self.entries[index]
        left, right = read_image(entry.left), read_image(entry.right)
        if left.shape != right.shape:
            raise DataError(f"{entry.right}: {_size(right)} does not match the left image "
                            f"{entry.left} ({_size(left)})")
        return entry.name, left, right

    def load(self, index: int) -> StereoSample:
        entry = self.entries[index]
        if entry.disparity is None:
            raise DataError(f"{entry.left.parent}: no ground-truth disparity for {entry.left.name}")
        name, left, right = self.load_views(index)
        disparity, valid = self.read_disparity(entry.disparity, entry.scale)
        if disparity.shape != left.shape[:2]:
            raise DataError(f"{entry.disparity}: ground truth is {_size(disparity)} but the images "
                            f"are {_size(left)} ({entry.left})")
        return StereoSample(name, left, right, disparity, valid)


def _size(array: np.ndarray) -> str:
    return f"{array.shape[1]}x{array.shape[0]}"


def _names(lefts: list[Path]) -> list[str]:
    """Left paths relative to their common folder, without suffix (with it where that clashes)."""
    common = Path(os.path.commonpath([str(p.parent) for p in lefts]))
    relative = [p.relative_to(common) for p in lefts]
    names = [r.with_suffix("").as_posix() for r in relative]
    if len(set(names)) < len(names):
        names = [r.as_posix() for r in relative]
    return names


# --- glob patterns -------------------------------------------------------------------------


class _Pattern:
    """A glob as a literal base folder and a regex with one group per wildcard."""

    def __init__(self, text: str, root: Path):
        self.text = text
        parts = Path(os.path.expanduser(text)).parts
        if any("**" in part and part != "**" for part in parts):
            raise ConfigError(f"pattern {text!r}: '**' must be a whole path component, as in "
                              "scenes/**/left/*.png")
        translated = [_translate(part, last=i == len(parts) - 1) for i, part in enumerate(parts)]
        regexes, counts, ends_in_group = zip(*translated)
        self.strip_suffix = ends_in_group[-1]
        first = next((i for i, c in enumerate(counts) if c), len(parts) - 1)
        self.base = Path(os.path.normpath(root / Path(*parts[:first]))) if first else root
        self.wildcards = sum(counts)
        self.recursive = "**" in parts[first:]
        self.depth = len(parts) - first
        body = ""
        for part, regex in zip(parts[first:], regexes[first:]):
            body += regex if part == "**" else regex + "/"
        self.regex = re.compile(body.removesuffix("/"))

    def key(self, match: re.Match) -> tuple[str, ...]:
        groups = [g.rstrip("/") for g in match.groups()]
        if self.strip_suffix:
            groups[-1] = os.path.splitext(groups[-1])[0]
        return tuple(groups)

    def files(self) -> dict[tuple[str, ...], Path]:
        """Key -> file for every file the pattern matches; a DataError when none does."""
        if not self.base.is_dir():
            raise DataError(f"no files match {self.text!r}: folder {shown_path(self.base)} "
                            "does not exist")
        found: dict[tuple[str, ...], Path] = {}
        seen = set()
        for folder, dirs, files in os.walk(self.base, followlinks=True):
            info = os.stat(folder)
            relative = Path(folder).relative_to(self.base)
            level = len(relative.parts)
            if (info.st_dev, info.st_ino) in seen:  # a symlink loop
                dirs[:] = []
                continue
            seen.add((info.st_dev, info.st_ino))
            if not self.recursive and level >= self.depth - 1:
                dirs[:] = []  # deeper than the pattern reaches
            for file in files:
                match = self.regex.fullmatch((relative / file).as_posix())
                if match is None:
                    continue
                path = Path(folder) / file
                if not path.is_file():
                    continue
                key = self.key(match)
                if key in found:
                    first, second = sorted((found[key], path))
                    raise DataError(f"{self.text!r} matches both {first} and {second} with the "
                                    f"same wildcard parts ({', '.join(key)}); make it more "
                                    "specific")
                found[key] = path
        if not found:
            raise DataError(f"no files match {self.text!r} (looked in {self.base})")
        return found


def _translate(part: str, last: bool) -> tuple[str, int, bool]:
    """One path component -> (regex, number of groups, whether a group ends it); hidden names
    need a literal dot, as in the shell."""
    if part == "**":
        step = r"(?!\.)[^/]+"
        return (f"((?:{step}/)*{step})", 1, True) if last else (f"((?:{step}/)*)", 1, False)
    regex, count, i, ends_in_group = "", 0, 0, False
    while i < len(part):
        ends_in_group = part[i] in "*?["
        char = part[i]
        if char == "*":
            regex += r"((?!\.)[^/]*)" if i == 0 else r"([^/]*)"
        elif char == "?":
            regex += r"((?!\.)[^/])" if i == 0 else r"([^/])"
        elif char == "[":
            start = i + 1 + (part[i + 1:i + 2] == "!")
            end = part.find("]", start + (part[start:start + 1] == "]"))
            if end < 0:  # no closing bracket: a literal "[", as fnmatch reads it
                regex += re.escape(char)
                i += 1
                ends_in_group = False
                continue
            inner = part[i + 1:end]
            negate = inner.startswith("!")
            inner = re.sub(r"([\\^\[&~|])", r"\\\1", inner[1:] if negate else inner)
            regex += f"((?!/)[{'^' if negate else ''}{inner}])"
            i = end
        else:
            regex += re.escape(char)
            i += 1
            continue
        count += 1
        i += 1
    # a trailing wildcard swallows the suffix, dropped from the key so that left/* and disp/*
    # pair 0001.png with 0001.pfm
    return regex, count, last and ends_in_group


def folder_from_globs(left: str, right: str, gt: str | None = None, gt_format: str = "auto",
                      gt_scale: float = 1.0, root: Path | None = None) -> FolderStereo:
    """Pairs from glob patterns (``*``, ``?``, ``[..]``, ``**``; relative ones under ``root``,
    default the working folder) matched by what their wildcards match, in left-path order."""
    _check_gt_options(gt_format, gt_scale)
    root = Path(os.path.normpath(Path(root).absolute())) if root is not None else Path.cwd()
    patterns = {"left": _Pattern(left, root), "right": _Pattern(right, root)}
    if gt is not None:
        patterns["ground-truth"] = _Pattern(gt, root)
    for role, pattern in list(patterns.items())[1:]:
        if pattern.wildcards != patterns["left"].wildcards:
            raise ConfigError(f"{role} pattern {pattern.text!r} has {pattern.wildcards} "
                              f"wildcard(s) but left pattern {left!r} has "
                              f"{patterns['left'].wildcards}; each must match one-to-one")
    found = {role: pattern.files() for role, pattern in patterns.items()}
    lefts = sorted(found["left"].items(), key=lambda item: item[1])
    for role in list(found)[1:]:
        missing = [(key, path) for key, path in lefts if key not in found[role]]
        if missing:
            key, first = missing[0]
            raise DataError(f"{first}: no {role} file matches {patterns[role].text!r} with "
                            f"the same wildcard parts ({', '.join(key)}); {len(missing)} of "
                            f"{len(lefts)} left images have none")
    names = _names([path for _, path in lefts])
    pairs = [(name, path, found["right"][key], found["ground-truth"][key] if gt else None)
             for name, (key, path) in zip(names, lefts)]
    return FolderStereo(pairs, gt_format, gt_scale)


# --- list file -----------------------------------------------------------------------------


def _fields(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True)
    lexer.whitespace += ","
    lexer.whitespace_split = True
    lexer.commenters = ""
    return list(lexer)


def folder_from_list(path: Path, gt_format: str = "auto", gt_scale: float = 1.0) -> FolderStereo:
    """Pairs from a text file, one ``left right [gt]`` per line (whitespace or commas, shell
    quoting for spaces; ``#`` lines skipped), relative paths under the list file's folder."""
    _check_gt_options(gt_format, gt_scale)
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: no such list file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the list file ({exc})") from None
    folder = path.parent.absolute()
    rows: list[tuple[int, list[Path]]] = []
    listed: dict[Path, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            fields = _fields(line)
        except ValueError as exc:
            raise DataError(f"{path}:{number}: cannot split the line ({exc})") from None
        if len(fields) not in (2, 3):
            raise DataError(f"{path}:{number}: {len(fields)} field(s), expected 'left right "
                            "[ground truth]'")
        files = [Path(os.path.normpath(folder / os.path.expanduser(field))) for field in fields]
        for file in files:
            if not file.is_file():
                raise DataError(f"{path}:{number}: {file} does not exist")
        if rows and len(files) != len(rows[0][1]):
            with_gt, without = (number, rows[0][0]) if len(files) == 3 else (rows[0][0], number)
            raise DataError(f"{path}:{number}: line {with_gt} has a ground truth but line "
                            f"{without} has none; give every line one or none")
        if files[0] in listed:
            raise DataError(f"{path}:{number}: {files[0]} is already listed on line "
                            f"{listed[files[0]]}")
        listed[files[0]] = number
        rows.append((number, files))
    if not rows:
        raise DataError(f"{path}: no pairs listed (one 'left right [ground truth]' per line)")
    names = _names([files[0] for _, files in rows])
    pairs = [(name, files[0], files[1], files[2] if len(files) == 3 else None)
             for name, (_, files) in zip(names, rows)]
    return FolderStereo(pairs, gt_format, gt_scale)


def open_folder(left: str | None = None, right: str | None = None, gt: str | None = None,
                pair_list: str | None = None, gt_format: str = "auto", gt_scale: float = 1.0,
                need_ground_truth: bool = True) -> FolderStereo:
    """The dataset "folder": pairs from ``left``/``right`` (/``gt``) glob patterns or a
    ``pair_list`` file, with ground truth when ``need_ground_truth`` (training and
    evaluation)."""
    list_file = pair_list
    if list_file and (left or right or gt):
        raise ConfigError("and `left`/`right`/`gt`: give the folder's pairs one way",
                          parameter="pair_list")
    if list_file:
        dataset = folder_from_list(Path(list_file), gt_format, gt_scale)
    elif left and right:
        dataset = folder_from_globs(left, right, gt, gt_format, gt_scale)
    else:
        raise ConfigError("folder needs `left` and `right` glob patterns (and `gt`) "
                          "or `pair_list` FILE", parameter="dataset")
    if need_ground_truth and not dataset.has_ground_truth:
        source = f"`pair_list` {list_file}" if list_file else "`gt`"
        raise ConfigError(f"folder: ground truth is needed here; give {source} "
                          "(a third column in the list, or a `gt` glob pattern)",
                          parameter="dataset")
    return dataset

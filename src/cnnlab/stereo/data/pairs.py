"""Which pairs ``stereo predict`` runs on: two files, two folders (files of the same name),
two glob patterns (paired by what their wildcards match) or a list file; ground truth alike.
Every file is found and its image header read before any model is loaded."""

from __future__ import annotations

import glob
from pathlib import Path

from PIL import Image

from cnnlab.errors import ConfigError, DataError, shown_path
from cnnlab.stereo.data.folder import Pair, folder_from_globs, folder_from_list

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp")


def _folder_pairs(left: Path, right: Path, gt: str | None) -> list[Pair]:
    """The images of ``left`` with a file of the same name in ``right`` (and in ``gt``, a
    folder, by stem: any ground-truth suffix)."""
    lefts = sorted(p for p in left.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not lefts:
        raise DataError(f"{left}: no images ({', '.join(IMAGE_SUFFIXES)})")
    missing = [p.name for p in lefts if not (right / p.name).is_file()]
    if missing:
        raise DataError(f"{right}: no {missing[0]} to pair with {left / missing[0]}"
                        + (f" ({len(missing)} left images unpaired)" if len(missing) > 1 else ""))
    pairs = []
    for path in lefts:
        truth = None
        if gt is not None:
            found = sorted(Path(gt).glob(glob.escape(path.stem) + ".*"))
            if not found:
                raise DataError(f"{gt}: no ground truth named {path.stem}.* for {path}")
            if len(found) > 1:
                raise DataError(f"{gt}: {found[0].name} and {found[1].name} could both be the "
                                f"ground truth of {path}; keep one, or give a `gt` pattern")
            truth = found[0]
        pairs.append((path.stem, path, right / path.name, truth))
    return pairs


def resolve_pairs(left: str | None, right: str | None, list_file: str | None = None,
                  gt: str | None = None) -> list[Pair]:
    """(name, left, right, ground truth or None) for each pair the arguments name."""
    if list_file is not None:
        if left or right:
            raise ConfigError("and LEFT RIGHT: give the pairs one way", parameter="pair_list")
        if gt is not None:
            raise ConfigError("and `gt`: put the ground truth in the list's third column",
                              parameter="pair_list")
        return folder_from_list(Path(list_file)).pairs
    if not (left and right):
        raise ConfigError("give LEFT and RIGHT (files, folders or glob patterns) or `pair_list` "
                          "FILE")
    if glob.has_magic(left) or glob.has_magic(right):
        return folder_from_globs(left, right, gt).pairs
    left_path, right_path = Path(left), Path(right)
    if left_path.is_dir() or right_path.is_dir():
        if not (left_path.is_dir() and right_path.is_dir()):
            raise ConfigError(f"{left} and {right}: give two files or two folders")
        if gt is not None and not Path(gt).is_dir():
            raise ConfigError(f"{gt}: with folders of pairs, a folder of ground truth",
                              parameter="gt")
        return _folder_pairs(left_path, right_path, gt)
    for path in (left_path, right_path):
        if path.is_symlink() and not path.exists():
            raise DataError(f"{path}: a broken or looping symbolic link, not a readable image")
        if not path.is_file():
            raise DataError(f"{shown_path(path)}: no such file")
    return [(left_path.stem, left_path, right_path, Path(gt) if gt else None)]


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the file's header, or a one-line error naming it."""
    try:
        with Image.open(path) as image:
            return image.size[1], image.size[0]
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from None


def check_pair_headers(pairs: list[Pair]) -> list[tuple[int, int]]:
    """Each pair's (height, width), refusing unreadable images and views of different sizes
    and missing ground truth, before anything expensive runs."""
    sizes = []
    for _name, left, right, truth in pairs:
        size, other = image_size(left), image_size(right)
        if size != other:
            raise DataError(f"{right}: size {other[1]}x{other[0]} differs from {left.name} "
                            f"({size[1]}x{size[0]}); a rectified pair has equal sizes")
        if truth is not None and not Path(truth).is_file():
            raise DataError(f"{truth}: no such ground-truth file (for {left})")
        sizes.append(size)
    return sizes


def output_stems(pairs: list[Pair]) -> list[str]:
    """File-name stems for the outputs: the left file's stem, or the pair's name (folders
    joined by "_") where two left files share a stem."""
    stems = [Path(left).stem for _, left, _, _ in pairs]
    if len(set(stems)) == len(stems):
        return stems
    named = [name.replace("/", "_").replace("\\", "_") for name, _, _, _ in pairs]
    if len(set(named)) != len(named):
        raise DataError("two pairs would write the same output files; give distinct names")
    return named

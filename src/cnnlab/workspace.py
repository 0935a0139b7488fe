"""``cnnlab.setup()``: where this session's data and weights are, found by the documented
rules and said in one line each, so a notebook's first cell is one call.

The rules, most specific first: the arguments; ``$CNNLAB_DATA`` / ``$CNNLAB_WEIGHTS``; a
``shared/data`` / ``shared/weights`` folder beside the working folder or one of its three
parents, or beside the cnnlab checkout (how a course hands out its files); the user cache
(``~/.cache/cnnlab``). The roots chosen become this process's defaults (the environment
variables), so every later call finds the same files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cnnlab.data.root import ENV_VAR as DATA_ENV
from cnnlab.data.root import user_cache_dir
from cnnlab.errors import ConfigError

WEIGHTS_ENV = "CNNLAB_WEIGHTS"
VISION = ("mnist", "fashion-mnist", "cifar10")
STEREO = {"kitti2015": "KITTI2015", "kitti2012": "KITTI2012", "sceneflow": "SceneFlow",
          "middlebury": "Middlebury"}


@dataclass
class Setup:
    """What ``setup`` found: the roots, and for each dataset and weights file its path (None:
    missing) with a line saying so."""

    data_root: Path
    weights_root: Path
    found: dict[str, Path | None] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def has(self, name: str) -> bool:
        """Whether the dataset or weights ``name`` ("mnist", "psmnet-kitti2015") is here."""
        return self.found.get(name) is not None

    def __repr__(self) -> str:
        return "\n".join(self.lines)


def _shared(kind: str) -> Path | None:
    """``shared/<kind>`` beside the working folder, one of its parents, or the checkout."""
    here = Path.cwd().resolve()
    checkout = Path(__file__).resolve().parents[2]  # src/cnnlab/ -> the repository
    for folder in (here, *list(here.parents)[:3], checkout.parent):
        if (folder / "shared" / kind).is_dir():
            return folder / "shared" / kind
    return None


def _root(given: str | os.PathLike | None, variable: str, kind: str, cache: Path
          ) -> tuple[Path, str]:
    if given is not None:
        return Path(given).expanduser().resolve(), "given"
    if os.environ.get(variable):
        return Path(os.environ[variable]).expanduser().resolve(), f"${variable}"
    shared = _shared(kind)
    if shared is not None:
        return shared, "shared folder"
    return cache, "user cache"


def setup(data_root: str | os.PathLike | None = None,
          weights_root: str | os.PathLike | None = None, *,
          download: bool | Iterable[str] = False,
          log: Callable[[str], None] | None = print) -> Setup:
    """Find the data and weights (see the module's rules), make them this process's defaults,
    and print one line per dataset and weights file: found where, or what to get and where
    to put it. ``download`` fetches what is missing and can be fetched, checksums verified:
    True for everything (MNIST, Fashion-MNIST, CIFAR-10, the official PSMNet weights), or
    the names wanted, e.g. ``["mnist"]``."""
    from cnnlab.data.vision import _find_file, get_spec, load_split
    from cnnlab.stereo.weights.registry import STEREO_WEIGHTS, check_official

    known = (*VISION, *STEREO, *STEREO_WEIGHTS)
    if isinstance(download, bool):
        fetch = set(known) if download else set()
    else:
        fetch = {download} if isinstance(download, str) else set(download)
        unknown = sorted(fetch - set(known))
        if unknown:
            raise ConfigError(f"{', '.join(unknown)}: not something setup finds; choose from "
                              f"{', '.join(known)}", parameter="download")
        stereo = sorted(fetch & set(STEREO))
        if stereo:
            raise ConfigError(f"{', '.join(stereo)}: cannot be downloaded (their licences ask "
                              "you to register); see docs/stereo.md", parameter="download")

    data, data_how = _root(data_root, DATA_ENV, "data", user_cache_dir())
    weights, weights_how = _root(weights_root, WEIGHTS_ENV, "weights",
                                 user_cache_dir() / "weights")
    os.environ[DATA_ENV], os.environ[WEIGHTS_ENV] = str(data), str(weights)
    result = Setup(data, weights)
    result.lines += [f"data:    {data} ({data_how})", f"weights: {weights} ({weights_how})"]
    for name in VISION:
        spec = get_spec(name)
        wanted = spec.files["train"][0].name if spec.files else None
        path = (_find_file([data / spec.folder], wanted) if wanted
                else (data / spec.folder if (data / spec.folder).is_dir() else None))
        if path is None and name in fetch:
            load_split(name, "train", data, download=True)
            load_split(name, "test", data, download=True)
            path = data / spec.folder
        result.found[name] = data / spec.folder if path else None
        result.lines.append(f"  {name:<20} " + (f"found in {data / spec.folder}" if path else
                            f"missing: put it in {data / spec.folder}, or "
                            f"setup(download=[{name!r}])"))
    for name, folder in STEREO.items():
        path = data / folder
        result.found[name] = path if path.is_dir() else None
        result.lines.append(f"  {name:<20} " + (f"found in {path}" if path.is_dir() else
                            f"missing: put it in {path} (see docs/data.md)"))
    for name, entry in STEREO_WEIGHTS.items():
        path, status = entry.status(weights)
        if path is None and name in fetch and entry.sources:
            from cnnlab.engine.weights import download_weights

            path = download_weights(entry, weights, check_official, log=log)
            status = f"downloaded: {path}"
        result.found[name] = path
        target = weights / entry.folder if entry.folder else weights
        result.lines.append(f"  {name:<20} " + (status if path else
                            f"{status}: {entry.file_name} into {target}, or "
                            f"setup(download=[{name!r}])"))
    if log is not None:
        log(repr(result))
    return result

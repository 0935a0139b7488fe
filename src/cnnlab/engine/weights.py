"""Pretrained weights as data about a model (torchvision's ``Weights``, timm's pretrained cfgs).

A registry entry names the released file, where it comes from, how to check it and, for
files that carry none (official releases of other codebases), its model card. Files are looked
up in ``--weights-root``, then ``$CNNLAB_WEIGHTS``, then the user cache, each as
``<root>/<folder>/<file>`` or ``<root>/<file>``; weights shipped inside cnnlab are used from
the package. ``--download`` fetches a missing file and keeps it only if it verifies.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cnnlab.data.download import download_verified, extract_member, fetch_url, file_digest
from cnnlab.data.root import user_cache_dir
from cnnlab.engine.atomic import atomic_write_text
from cnnlab.engine.card import ModelCard
from cnnlab.engine.checkpoint import resolve_checkpoint
from cnnlab.errors import CheckpointError, DataError

WEIGHTS_ENV = "CNNLAB_WEIGHTS"


def read_sha256sums(path: Path) -> dict[str, str]:
    """``file name -> sha256`` from a ``sha256sum``-style manifest (empty when absent)."""
    if not path.is_file():
        return {}
    sums = {}
    for line in path.read_text().splitlines():
        digest, _, name = line.strip().partition("  ")
        if digest and name:
            sums[name] = digest
    return sums


def update_sha256sums(path: Path, file_name: str, digest: str) -> None:
    """Set one file's line in the manifest (``sha256sum -c`` can check it), atomically."""
    sums = {**read_sha256sums(path), file_name: digest}
    atomic_write_text(path, "".join(f"{sums[name]}  {name}\n" for name in sorted(sums)))


def weights_roots(weights_root: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for weights files, in order: the option, the variable, the cache."""
    roots = []
    if weights_root is not None:
        roots.append(Path(weights_root).expanduser())
    if os.environ.get(WEIGHTS_ENV):
        roots.append(Path(os.environ[WEIGHTS_ENV]).expanduser())
    roots.append(user_cache_dir() / "weights")
    return roots


@dataclass(frozen=True)
class Source:
    """Where a file can be fetched: the URL itself, or one ``member`` of a tar archive there
    (checked by ``archive_sha256`` before anything is read out of it)."""

    url: str
    label: str
    member: str | None = None
    archive_sha256: str | None = None


@dataclass(frozen=True)
class Weights:
    """One released set of weights: file, checks, sources and (if the file has none) card."""

    name: str
    file_name: str
    description: str
    origin: str  # who released it and where it is linked, for people
    folder: str = ""  # sub-folder of a weights root, as the release is usually kept
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None
    sources: tuple[Source, ...] = ()
    card: ModelCard | None = None  # None: the file carries its own card
    packaged: Path | None = None  # shipped inside cnnlab

    def candidates(self, weights_root: str | os.PathLike | None = None) -> list[Path]:
        if self.packaged is not None:
            return [self.packaged]
        paths = []
        for root in weights_roots(weights_root):
            if self.folder:
                paths.append(root / self.folder / self.file_name)
            paths.append(root / self.file_name)
        return paths

    def find(self, weights_root: str | os.PathLike | None = None) -> Path | None:
        return next((p for p in self.candidates(weights_root) if p.is_file()), None)

    @property
    def checksum(self) -> str | None:
        if self.sha256:
            return f"sha256 {self.sha256}"
        return f"md5 {self.md5}" if self.md5 else None

    def verify(self, path: Path, shown: str | None = None) -> None:
        """Size and checksum against the release; DataError naming the file (or ``shown``)."""
        shown = shown or str(path)
        size = path.stat().st_size
        if self.size is not None and size != self.size:
            raise DataError(f"{shown}: {size:,} bytes, but the release {self.file_name} has "
                            f"{self.size:,}; it is not the released file")
        for algorithm, expected in (("sha256", self.sha256), ("md5", self.md5)):
            if expected and (got := file_digest(path, algorithm)) != expected:
                remedy = (f"reinstall cnnlab ({self.origin})" if self.packaged
                          else f"delete it and get it again: {self.origin}")
                raise DataError(f"{shown}: {algorithm} {got} does not match the release's "
                                f"{expected}; it is not the released file (corrupt or another "
                                f"version): {remedy}")

    def status(self, weights_root: str | os.PathLike | None = None) -> tuple[Path | None, str]:
        """(the usable file or None, a line saying where it is and whether it verifies)."""
        path = self.find(weights_root)
        if path is None:
            return None, "missing"
        try:
            self.verify(path)
        except DataError as exc:
            return None, f"found but unusable: {exc}"
        return path, f"found: {path}" + (f" ({self.checksum} verified)" if self.checksum
                                          else " (no published checksum)")

    def missing_message(self, weights_root: str | os.PathLike | None = None) -> str:
        places = " or ".join(str(p) for p in self.candidates(weights_root))
        if self.packaged is not None:
            return (f"{self.name}: the shipped file {places} is missing; reinstall cnnlab "
                    f"({self.origin})")
        root = weights_roots(weights_root)[0]
        target = root / self.folder if self.folder else root
        return (f"{self.name}: {self.file_name} not found in {places}; get it from "
                f"{self.origin} and put it in {target}, pass `weights_root` (the folder that "
                f"holds {self.folder + '/' if self.folder else ''}{self.file_name}), set "
                f"${WEIGHTS_ENV}, or `download` when online")


def registered(registry: dict[str, Weights], name: str, what: str) -> Weights:
    """The entry called ``name``; an unknown name gets the list to choose from."""
    try:
        return registry[name]
    except KeyError:
        raise CheckpointError(f"{name}: unknown {what} weights; choose from "
                              f"{', '.join(registry)}") from None


def _fetcher(source: Source, timeout: float, label: str) -> Callable[[Path], None]:
    """Fetches ``source`` into a temporary path: the file itself, or its archive's member."""
    if source.member is None:
        return lambda tmp: fetch_url(source.url, tmp, timeout, label)

    def fetch_member(tmp: Path) -> None:
        archive = tmp.with_name(tmp.name + ".archive")
        try:
            fetch_url(source.url, archive, timeout, label)
            if source.archive_sha256:
                got = file_digest(archive, "sha256")
                if got != source.archive_sha256:
                    raise DataError(f"archive sha256 {got} does not match the expected "
                                    f"{source.archive_sha256}")
            extract_member(archive, source.member, tmp)
        finally:
            archive.unlink(missing_ok=True)
    return fetch_member


# a lab's structural check of a file (path, name to show in errors); raises a CnnlabError
Check = Callable[[Path, str], None]


def download_weights(entry: Weights, weights_root: str | os.PathLike | None = None,
                     check: Check | None = None, timeout: float = 60.0,
                     log: Callable[[str], None] | None = None) -> Path:
    """Fetch ``entry`` into the first weights root from each source in turn; the file is kept
    only if it verifies (checksum, else the lab's structural ``check``)."""
    if not entry.sources:
        raise DataError(f"{entry.name}: no download source is known; get it from {entry.origin}")
    if entry.checksum is None and check is None:
        raise DataError(f"{entry.name}: refusing to download a file that cannot be verified")
    root = weights_roots(weights_root)[0]
    dest = (root / entry.folder if entry.folder else root) / entry.file_name

    def verify(path: Path) -> None:
        entry.verify(path, shown="the download")
        if check is not None:
            check(path, "the download")

    attempts = []
    for source in entry.sources:
        fetch = _fetcher(source, timeout, entry.file_name)

        def attempt(tmp: Path, fetch=fetch, source=source) -> None:
            if log:
                log(f"Downloading {entry.file_name} from {source.label} ({source.url})")
            fetch(tmp)
        attempts.append((source.label, attempt))
    return download_verified(dest, attempts, verify)


def resolve_weights(entry: Weights, weights_root: str | os.PathLike | None = None,
                    download: bool = False, check: Check | None = None,
                    log: Callable[[str], None] | None = None) -> Path:
    """The verified local file of ``entry``: found, or downloaded when ``download`` is set;
    otherwise one line naming the file, where to put it and where it comes from."""
    path = entry.find(weights_root)
    if path is not None:
        try:
            entry.verify(path)
            return path
        except DataError:
            if not download or entry.packaged is not None:
                raise
            if log:
                log(f"{path} does not verify; downloading it again")
    if not download:
        raise CheckpointError(entry.missing_message(weights_root))
    return download_weights(entry, weights_root, check, log=log)


def locate_weights(name_or_path: str | os.PathLike, registry: dict[str, Weights],
                   weights_root: str | os.PathLike | None = None, download: bool = False,
                   which: str = "best", check: Check | None = None,
                   log: Callable[[str], None] | None = None) -> tuple[Path, Weights | None]:
    """A name in ``registry`` -> its verified file (and entry); otherwise a run directory (its
    ``which`` checkpoint) or a file. ``check`` vets downloads that have no checksum."""
    if isinstance(name_or_path, str) and name_or_path in registry:
        entry = registry[name_or_path]
        return resolve_weights(entry, weights_root, download, check, log), entry
    path = Path(name_or_path)
    looks_like_name = isinstance(name_or_path, str) and not set("/" + os.sep) & set(name_or_path)
    if not path.exists() and looks_like_name:
        raise CheckpointError(f"{name_or_path}: no such checkpoint, run directory or "
                              f"registered weights ({', '.join(registry)})")
    return resolve_checkpoint(path, which), None


def sourced(card: ModelCard, path: Path, entry: Weights | None) -> ModelCard:
    """``card`` noting the file it was loaded from and, for registered weights, how that file
    was verified."""
    source = {**card.source, "file": str(path)}
    if entry is not None:
        source["verified"] = entry.checksum or "structure (no published checksum)"
    return card.with_changes(source=source)

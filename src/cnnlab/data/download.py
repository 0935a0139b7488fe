"""Checksum-verified downloads (torchvision style), written atomically."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

from cnnlab.engine.atomic import temp_beside
from cnnlab.errors import CnnlabError, DataError


def file_digest(path: Path, algorithm: str = "md5", chunk: int = 1 << 20) -> str:
    """Hex digest of a file (md5, sha256, ...), read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def fetch_url(url: str, dest: Path, timeout: float = 30.0, label: str | None = None) -> None:
    """Stream ``url`` into ``dest`` (the caller makes it atomic and checks it), with a
    progress bar in bytes on a terminal: datasets and weights are tens to hundreds of MB."""
    from tqdm import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": "cnnlab"})
    with open(dest, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as resp:
        total = int(resp.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, leave=False,
                  desc=f"download {label or dest.name}", disable=None,
                  dynamic_ncols=True) as bar:
            while block := resp.read(1 << 20):
                out.write(block)
                bar.update(len(block))


def extract_member(archive: Path, member: str, dest: Path) -> None:
    """Copy one file out of a tar archive (any compression) without extracting the rest."""
    try:
        with tarfile.open(archive) as tar:
            handle = tar.extractfile(member)
            if handle is None:
                raise DataError(f"{archive.name}: {member} is not a regular file")
            with handle, open(dest, "wb") as out:
                shutil.copyfileobj(handle, out, 1 << 20)
    except KeyError:
        raise DataError(f"{archive.name}: no member {member}") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{archive.name}: not a readable tar archive ({exc})") from None


def download_verified(dest: Path, attempts: list[tuple[str, Callable[[Path], None]]],
                      verify: Callable[[Path], None]) -> Path:
    """Try each ``(label, fetch(tmp))`` in turn; ``dest`` appears only once ``verify(tmp)``
    passes (it raises a CnnlabError otherwise). Every failure is named in the final error."""
    errors = []
    for label, fetch in attempts:
        tmp = temp_beside(dest, ".part")
        try:
            fetch(tmp)
            verify(tmp)
            os.replace(tmp, dest)
            return dest
        except (OSError, CnnlabError, ValueError) as exc:  # try the next source
            errors.append(f"{label}: {exc}")
        finally:
            tmp.unlink(missing_ok=True)
    raise DataError(f"could not download {dest.name}: " + "; ".join(errors))


def download_file(urls: list[str], dest: Path, md5: str, timeout: float = 30.0) -> Path:
    """Fetch the first mirror that answers into ``dest``; it appears only if its md5 matches."""
    if dest.exists() and file_digest(dest) == md5:
        return dest

    def check(path: Path) -> None:
        got = file_digest(path)
        if got != md5:
            raise DataError(f"md5 {got} does not match the expected {md5}")

    attempts = [(url, lambda tmp, url=url: fetch_url(url, tmp, timeout, dest.name))
                for url in urls]
    return download_verified(dest, attempts, check)

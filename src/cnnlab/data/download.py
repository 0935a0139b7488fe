"""Checksum-verified downloads (torchvision style), written atomically."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

from cnnlab.errors import DataError


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def download_file(urls: list[str], dest: Path, md5: str, timeout: float = 30.0) -> Path:
    """Fetch the first mirror that answers into ``dest``; it appears only if its md5 matches."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and md5sum(dest) == md5:
        return dest
    errors = []
    for url in urls:
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix=".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                while block := resp.read(1 << 20):
                    out.write(block)
            got = md5sum(tmp)
            if got != md5:
                raise DataError(f"{url}: md5 {got} does not match the expected {md5}")
            os.replace(tmp, dest)
            return dest
        except (OSError, DataError) as exc:  # try the next mirror
            errors.append(f"{url}: {exc}")
        finally:
            tmp.unlink(missing_ok=True)
    raise DataError(f"could not download {dest.name}: " + "; ".join(errors))

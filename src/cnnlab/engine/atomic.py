"""Atomic file writes: write to a temporary file in the same folder, fsync, rename."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path

from cnnlab.errors import ConfigError


def temp_beside(path: Path, suffix: str = ".tmp") -> Path:
    """Create an empty, uniquely named file next to ``path`` with the permissions ``path``
    will end up with: its current ones if it exists, else what the umask gives a new file
    (mkstemp's private 0o600 would leak into every result otherwise)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
        except FileExistsError:
            continue
        os.close(fd)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        return tmp


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result over ``path`` only once it is complete."""
    path = Path(path)
    tmp = None
    try:  # the temporary file is made inside: a stop (SIGTERM) right after still removes it
        tmp = temp_beside(path)
        mode = tmp.stat().st_mode & 0o777
        write(tmp)
        if tmp.stat().st_mode & 0o777 != mode:  # a writer that recreated the file (safetensors)
            os.chmod(tmp, mode)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_json(path: Path, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def check_writable_folder(path: str | Path, parameter: str) -> Path:
    """``path`` as a folder cnnlab can write into (created later, by the first write), or a
    one-line error naming ``parameter`` (the CLI shows its flag), before any expensive work
    starts."""
    path = Path(path)
    name = parameter.lstrip("-").replace("-", "_")

    def refuse(problem: str) -> ConfigError:
        return ConfigError(f"{path}: {problem}", parameter=name)

    if path.is_symlink() and not path.exists():
        raise refuse("a broken or looping symbolic link")
    if path.exists() and not path.is_dir():
        raise refuse("exists and is not a folder")
    existing = path
    while not existing.exists():
        if existing.is_symlink():  # a link below which nothing can be made
            raise refuse(f"{existing} is a broken or looping symbolic link")
        existing = existing.parent
    if not existing.is_dir():
        raise refuse(f"{existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise refuse(f"{existing} is not writable for this user")
    return path


def check_writable_file(path: str | os.PathLike, parameter: str) -> Path:
    """``path`` as a file cnnlab can write (atomically, beside it), or a one-line error naming
    ``parameter``: not a folder, not a broken or looping link, its folder creatable and
    writable. Called before any expensive work, as ``check_writable_folder`` is for folders."""
    path = Path(path).expanduser()
    name = parameter.lstrip("-").replace("-", "_")
    if path.is_symlink() and not path.exists():
        raise ConfigError(f"{path}: a broken or looping symbolic link", parameter=name)
    if path.is_dir():
        raise ConfigError(f"{path}: a folder; give the name of a file to write", parameter=name)
    if path.exists() and not path.is_file():
        raise ConfigError(f"{path}: not a regular file", parameter=name)
    check_writable_folder(path.parent, name)
    return path


def _same_file(one: Path, other: Path) -> bool:
    try:
        return os.path.samefile(one, other)
    except OSError:
        return False


def check_spares_inputs(outputs: Iterable[str | os.PathLike],
                        inputs: Iterable[str | os.PathLike | None], parameter: str) -> None:
    """Refuse, before anything is read or written, an output that is one of the ``inputs``
    (the same file, also through a symbolic or hard link): one line naming ``parameter`` and
    the colliding file. Every command computes the files it will write (or remove as stale)
    and passes them here with every file it reads."""
    existing = []
    for source in inputs:
        if source is not None and Path(source).expanduser().exists():
            existing.append(Path(source).expanduser())
    if not existing:
        return
    name = parameter.lstrip("-").replace("-", "_")
    for target in outputs:
        target = Path(target).expanduser()
        if not target.exists():
            continue
        hit = next((source for source in existing if _same_file(target, source)), None)
        if hit is not None:
            linked = "" if target.absolute() == hit.absolute() else ", the same file by a link"
            raise ConfigError(f": writing {target} would overwrite the input {hit}{linked}; "
                              "choose another name or folder", parameter=name)

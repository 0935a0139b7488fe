"""Build the API reference of cnnlab's public faces from their docstrings (pdoc):
``python docs/build_api.py [OUT]`` writes HTML into OUT (default docs/api, not committed).
The tests build it too (tests/test_docs.py), so it cannot rot."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

FACES = ("cnnlab", "cnnlab.classify", "cnnlab.stereo", "cnnlab.basics", "cnnlab.exercises")


def public_names() -> dict[str, list[str]]:
    """Each face's ``__all__``, every name resolved (lazy ones imported) so pdoc sees it."""
    names = {}
    for face in FACES:
        module = importlib.import_module(face)
        names[face] = list(getattr(module, "__all__", []))
        for name in names[face]:
            getattr(module, name)
    return names


def build(out: Path) -> Path:
    import pdoc

    public_names()
    pdoc.pdoc(*FACES, output_directory=out)
    return out


if __name__ == "__main__":
    target = build(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "api"))
    print(f"API reference: {target / 'index.html'}")

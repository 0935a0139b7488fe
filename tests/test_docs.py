"""The API reference builds from the docstrings (docs/build_api.py), and every public name of
every face is in it, documented."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _builder():
    spec = importlib.util.spec_from_file_location("build_api", ROOT / "docs" / "build_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_public_name_is_documented():
    names = _builder().public_names()
    undocumented = []
    for face, public in names.items():
        module = importlib.import_module(face)
        assert public, f"{face} has no __all__"
        for name in public:
            value = getattr(module, name)
            if (inspect.isclass(value) or inspect.isfunction(value)) and not inspect.getdoc(
                    value):
                undocumented.append(f"{face}.{name}")
    assert not undocumented


def test_the_reference_builds(tmp_path):
    pytest.importorskip("pdoc", reason="pdoc is not installed (pip install -e '.[dev]')")
    builder = _builder()
    out = builder.build(tmp_path / "api")
    for face, public in builder.public_names().items():
        page = out.joinpath(*face.split(".")).with_suffix(".html")
        html = page.read_text()
        missing = [name for name in public
                   if f'id="{name}"' not in html and not name.startswith("__")]
        assert not missing, f"{page.name} lacks {missing}"

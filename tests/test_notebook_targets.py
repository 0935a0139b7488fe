"""The lab notebooks stay short and use only cnnlab's public faces: a student reads the
exercises, not plumbing. Counts are of code lines that are neither blank nor comments,
exercise solutions and docstrings included."""

from __future__ import annotations

import ast
import importlib
import json
import re
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
# the notebooks held to these targets
TARGETED = ("mnist_lab.ipynb", "pytorch_review.ipynb", "cnn_basics.ipynb", "psmnet_lab.ipynb")
MAX_CODE_LINES = 120  # in the whole notebook
MAX_CELL_LINES = 20  # in any one code cell
MAX_SETUP_LINES = 5  # install-if-missing and cnnlab.setup()
PUBLIC_FACES = {"cnnlab", "cnnlab.classify", "cnnlab.stereo", "cnnlab.basics",
                "cnnlab.exercises"}
# besides the standard library, what a notebook may import
OTHER_PACKAGES = {"torch", "torchvision", "numpy", "matplotlib", "PIL", "IPython", "pandas",
                  "scipy"}
MAGIC = re.compile(r"^(\s*)[%!]")


def code_cells(name: str) -> list[str]:
    cells = json.loads((NOTEBOOKS / name).read_text())["cells"]
    return ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]


def code_lines(source: str) -> list[str]:
    stripped = (line.strip() for line in source.splitlines())
    return [line for line in stripped if line and not line.startswith("#")]


def setup_cells(name: str) -> list[str]:
    """The code cells between the title and the first markdown cell after it."""
    cells = json.loads((NOTEBOOKS / name).read_text())["cells"]
    start = 1 if cells and cells[0]["cell_type"] == "markdown" else 0
    setup = []
    for cell in cells[start:]:
        if cell["cell_type"] == "markdown":
            break
        setup.append("".join(cell["source"]))
    return setup


def python_of(source: str) -> ast.Module:
    """A cell as Python: IPython magics and shell lines become ``pass``."""
    if source.lstrip().startswith("%%"):
        return ast.Module(body=[], type_ignores=[])
    return ast.parse("\n".join(MAGIC.sub(r"\1pass  # ", line) for line in source.splitlines()))


def public_names(face: str) -> set[str]:
    return set(importlib.import_module(face).__all__)


def check_cnnlab_path(module: str, names: list[str], where: str) -> list[str]:
    """Problems with ``module`` (reached by import or attribute) and the names taken from it."""
    if module not in PUBLIC_FACES:
        return [f"{where}: {module} is not a public face ({', '.join(sorted(PUBLIC_FACES))})"]
    problems = []
    for name in names:
        if f"{module}.{name}" in PUBLIC_FACES:
            continue
        if name.startswith("_") and not name.startswith("__"):
            problems.append(f"{where}: {module}.{name} is private")
        elif name not in public_names(module):
            problems.append(f"{where}: {module}.{name} is not in {module}.__all__")
    return problems


def attribute_chain(node: ast.Attribute) -> list[str] | None:
    """``a.b.c`` as ["a", "b", "c"]; None when it does not start at a name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return [node.id, *reversed(parts)] if isinstance(node, ast.Name) else None


def import_problems(name: str) -> list[str]:
    problems, faces = [], {}  # faces: local name -> the cnnlab module it is bound to
    for index, source in enumerate(code_cells(name)):
        where = f"{name} code cell {index}"
        for node in ast.walk(python_of(source)):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    top = alias.name.split(".")[0]
                    if top == "cnnlab":
                        problems += check_cnnlab_path(alias.name, [], where)
                        bound = alias.name if alias.asname else "cnnlab"
                        faces[alias.asname or "cnnlab"] = bound
                    elif top not in OTHER_PACKAGES and top not in sys.stdlib_module_names:
                        problems.append(f"{where}: imports {alias.name}")
            elif isinstance(node, ast.ImportFrom) and node.module:
                top = node.module.split(".")[0]
                if top == "cnnlab":
                    imported = [alias.name for alias in node.names]
                    problems += check_cnnlab_path(node.module, imported, where)
                    for alias in node.names:
                        if f"{node.module}.{alias.name}" in PUBLIC_FACES:
                            faces[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                elif top not in OTHER_PACKAGES and top not in sys.stdlib_module_names:
                    problems.append(f"{where}: imports from {node.module}")
        for node in ast.walk(python_of(source)):
            chain = attribute_chain(node) if isinstance(node, ast.Attribute) else None
            if chain and chain[0] in faces:
                module, rest = faces[chain[0]], chain[1:]
                while rest and f"{module}.{rest[0]}" in PUBLIC_FACES:
                    module, rest = f"{module}.{rest[0]}", rest[1:]
                problems += check_cnnlab_path(module, rest[:1], where)
    return sorted(set(problems))


def private_names(name: str) -> list[str]:
    """Attributes and imported names with one leading underscore (dunders are fine)."""
    found = []
    for index, source in enumerate(code_cells(name)):
        for node in ast.walk(python_of(source)):
            names = ([node.attr] if isinstance(node, ast.Attribute) else
                     [alias.name for alias in node.names]
                     if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                         "cnnlab") else [])
            found += [f"code cell {index}: {n}" for n in names
                      if n.startswith("_") and not n.startswith("__")]
    return found


@pytest.fixture(params=TARGETED, ids=lambda name: name.removesuffix(".ipynb"))
def notebook(request) -> str:
    if not (NOTEBOOKS / request.param).is_file():
        pytest.fail(f"notebooks/{request.param} is missing")
    return request.param


def test_code_lines_within_budget(notebook):
    counts = [len(code_lines(source)) for source in code_cells(notebook)]
    total = sum(counts)
    assert total <= MAX_CODE_LINES, (f"{notebook}: {total} code lines, over {MAX_CODE_LINES} "
                                     f"(per code cell: {counts})")
    big = {index: count for index, count in enumerate(counts) if count > MAX_CELL_LINES}
    assert not big, (f"{notebook}: code cells over {MAX_CELL_LINES} lines "
                     f"(code cell index: lines): {big}")


def test_setup_is_short_and_calls_setup(notebook):
    setup = setup_cells(notebook)
    lines = [line for source in setup for line in code_lines(source)]
    assert setup and any("cnnlab.setup(" in line for line in lines), (
        f"{notebook}: the code right after the title must call cnnlab.setup()")
    assert len(lines) <= MAX_SETUP_LINES, (
        f"{notebook}: setup of {len(lines)} lines, over {MAX_SETUP_LINES}: {lines}")
    installs = [line for source in setup for line in source.splitlines()
                if line.startswith(("%pip", "!pip"))]  # indented: under an if or except
    assert not installs, (f"{notebook}: the setup installs cnnlab even where it is "
                          f"installed; do it only when the import fails: {installs}")


def test_imports_only_public_faces(notebook):
    problems = import_problems(notebook)
    assert not problems, "\n".join(problems)


def test_no_private_names(notebook):
    found = private_names(notebook)
    assert not found, f"{notebook}: names with a leading underscore: {found}"


def test_the_checks_catch_what_they_are_for(tmp_path, monkeypatch):
    """Each check fails on a notebook that breaks it (the checks are not vacuous)."""
    monkeypatch.setattr(sys.modules[__name__], "NOTEBOOKS", tmp_path)

    def notebook_of(*cells: tuple[str, str]) -> str:
        (tmp_path / "bad.ipynb").write_text(json.dumps({"cells": [
            {"cell_type": kind, "source": text.splitlines(keepends=True)}
            for kind, text in cells]}))
        return "bad.ipynb"

    bad = notebook_of(("markdown", "# title"),
                      ("code", "%pip install cnnlab\nimport cnnlab\nSETUP = cnnlab.setup()"),
                      ("markdown", "## one"),
                      ("code", "from cnnlab.classify.training import train_classifier\n"
                               "from cnnlab import classify\n"
                               "import cnnlab.engine.loop\n"
                               "classify.run.train\nclassify.train\ncnnlab.setup\n"
                               "from cnnlab.basics import _shown\nrun._network\n"
                               "import requests"))
    with pytest.raises(AssertionError, match="installs cnnlab even where it is installed"):
        test_setup_is_short_and_calls_setup(bad)
    problems = " ".join(import_problems(bad))
    for expected in ("cnnlab.classify.training is not a public face",
                     "cnnlab.engine.loop is not a public face",
                     "cnnlab.classify.run is not in cnnlab.classify.__all__",
                     "cnnlab.basics._shown is private", "imports requests"):
        assert expected in problems
    assert "classify.train" not in problems.replace("classify.training", "")
    assert "cnnlab.setup" not in problems
    assert {p.split(": ")[1] for p in private_names(bad)} == {"_shown", "_network"}
    assert code_lines("# a comment\n\n  x = 1  # counted\n") == ["x = 1  # counted"]

"""cnnlab's layering, as an allow-list of arrows between its top-level packages.

    cli -> labs (classify, stereo, basics) -> engine -> data -> errors
    exercises -> labs; the package facade (cnnlab/__init__.py, with cnnlab.workspace's
    setup()) -> labs, exercises, engine, ...

A lab never imports another lab, engine and data import no lab, nothing imports cli, and
nothing but cli imports the facade. Every module under src/cnnlab is parsed with ``ast``:
module-level and function-level imports (``if TYPE_CHECKING`` ones too), absolute and
relative, and ``importlib.import_module("cnnlab...")`` with a literal name. A module that
is moved or renamed is still parsed; a new top-level package fails until it is placed here.

And, at run time: inference code never imports training code (the guide's layering rule).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "cnnlab"

LABS = {"classify", "stereo", "basics"}
FOUNDATION = {"engine", "data", "errors"}
ROOT = "cnnlab"  # the package's own __init__: the public facade
# node -> the nodes it may import (its own node is always allowed)
ALLOWED: dict[str, set[str]] = {
    ROOT: LABS | {"exercises", "workspace"} | FOUNDATION,
    "workspace": LABS | FOUNDATION,  # cnnlab.setup(): finds every lab's data and weights
    "__main__": set(),  # cnnlab/__main__.py; its one arrow is an exception below
    "cli": LABS | FOUNDATION | {ROOT, "exercises"},
    "exercises": LABS | FOUNDATION,
    "classify": FOUNDATION,
    "stereo": FOUNDATION,
    "basics": FOUNDATION,
    "engine": {"data", "errors"},
    "data": {"errors"},
    "errors": set(),
}
# module-level arrows outside the allow-list, each one deliberate (importer, imported): why
EXCEPTIONS: dict[tuple[str, str], str] = {
    # `python -m cnnlab` is the command line: the one module besides cli's own that imports it
    ("cnnlab.__main__", "cnnlab.cli"): "the entry point runs the CLI",
    # data -> engine inverts engine -> data (engine.weights downloads with data.download):
    # download writes through engine.atomic's temp file. Not a module cycle (engine.atomic
    # imports only errors), but the package arrow runs both ways. Moving temp_beside down
    # (to errors' level or into data) would remove this exception.
    ("cnnlab.data.download", "cnnlab.engine.atomic"): "atomic temp file for downloads",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def node_of(module: str) -> str:
    """cnnlab.stereo.models.psmnet -> stereo; cnnlab.errors -> errors; cnnlab -> cnnlab."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def imported_modules(path: Path, name: str, known: set[str]) -> list[tuple[str, int]]:
    """(cnnlab module imported, line) for every import in ``path`` (module ``name``)."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x, from ..engine import y
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from cnnlab import stereo` imports the subpackage; `from x import name` the
            # module x (where name is not itself a module)
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in known
                       else source for alias in node.names]
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name)
                       and node.func.id in ("import_module", "__import__")))):
            targets = [node.args[0].value]
        found += [(t, node.lineno) for t in targets if t == ROOT or t.startswith(ROOT + ".")]
    return found


def arrows() -> list[tuple[str, str, int]]:
    """(importer module, imported module, line) for every import between two nodes."""
    modules = all_modules()
    known = set(modules)
    found = []
    for name, path in modules.items():
        for target, line in imported_modules(path, name, known):
            if node_of(target) != node_of(name):
                found.append((name, target, line))
    return found


def test_every_module_belongs_to_a_known_package():
    unknown = sorted({node_of(m) for m in all_modules()} - set(ALLOWED))
    assert not unknown, f"place these top-level packages in the layering: {unknown}"


def test_the_parser_sees_the_imports_it_must():
    """A check on this test: it finds arrows of every kind (module level, inside functions,
    from-imports of subpackages), so an empty result cannot mean a broken parser."""
    found = {(a, b) for a, b, _ in arrows()}
    assert ("cnnlab.stereo.training.lab", "cnnlab.engine.lab") in found  # module level
    # cli.stereo's commands import their lab inside their functions
    assert any(a == "cnnlab.cli.stereo.predict" and b.startswith("cnnlab.stereo.")
               for a, b in found)
    assert ("cnnlab.__main__", "cnnlab.cli") in found


def test_parser_resolves_relative_and_dynamic_imports(tmp_path):
    path = tmp_path / "psmnet.py"
    path.write_text("from . import blocks\nfrom ..card import x\nfrom ...engine import loop\n"
                    "def f():\n    import importlib\n"
                    "    importlib.import_module('cnnlab.classify.train')\n")
    known = {"cnnlab.stereo.models.blocks", "cnnlab.engine.loop"}
    got = [t for t, _ in imported_modules(path, "cnnlab.stereo.models.psmnet", known)]
    assert got == ["cnnlab.stereo.models.blocks", "cnnlab.stereo.card", "cnnlab.engine.loop",
                   "cnnlab.classify.train"]


def test_imports_follow_the_allow_list():
    violations = []
    for importer, imported, line in arrows():
        source, target = node_of(importer), node_of(imported)
        if target in ALLOWED[source]:
            continue
        if any(importer == a and (imported == b or imported.startswith(b + "."))
               for a, b in EXCEPTIONS):
            continue
        violations.append(f"{importer} (line {line}) imports {imported}: {source} -> {target}")
    assert not violations, "layering violations:\n" + "\n".join(violations)


def test_every_exception_is_still_needed():
    """An exception whose import is gone must leave the list (so it cannot hide a new one)."""
    found = {(a, b) for a, b, _ in arrows()}
    stale = [pair for pair in EXCEPTIONS
             if not any(a == pair[0] and (b == pair[1] or b.startswith(pair[1] + "."))
                        for a, b in found)]
    assert not stale, f"remove these exceptions, their imports are gone: {stale}"


# training code: these modules, and every module of a lab's training room
TRAINING = ("cnnlab.engine.loop", "cnnlab.engine.optim", "cnnlab.engine.lab",
            "cnnlab.engine.session", "cnnlab.classify.training", "cnnlab.classify.task",
            "cnnlab.classify.release", "cnnlab.classify.run")
TRAINING_ROOMS = ("cnnlab.stereo.training",)


def test_eval_and_predict_import_no_training_module():
    code = ("import sys\n"
            "import cnnlab.classify.evaluate, cnnlab.classify.predict, cnnlab.classify.weights\n"
            "import cnnlab.classify.classifier\n"
            "import cnnlab.stereo.evaluation.evaluate, cnnlab.stereo.inference.predict\n"
            "import cnnlab.stereo.weights.registry, cnnlab.stereo.api\n"
            f"print(sorted(m for m in sys.modules if m in {TRAINING!r} or "
            f"m.startswith({TRAINING_ROOMS!r})))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={"PYTHONPATH": str(REPO / "src")}, timeout=120)
    assert proc.stdout.strip() == "[]"

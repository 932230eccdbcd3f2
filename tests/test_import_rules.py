"""The dependency rules of ARCHITECTURE.md, checked on the source, not by good intentions.

Every import is seen: absolute and relative, at module level, inside functions and under
``if TYPE_CHECKING:``, plus the modules that are imported by name at run time (a string
constant that is exactly a project module's dotted name, as in
``inference.cli.main.COMMAND_MODULES``).  The layering rules ignore imports that never
run (``TYPE_CHECKING``); the cycle rule counts them, because a cycle in the types is a
cycle in the design.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("inference", "viewer")
HEAVY = (
    "torch",
    "torchvision",
    "pytorch_grad_cam",
    "timm",
    "onnxruntime",
    "onnx",
    "dask",
    "distributed",
)
QT = ("PySide6", "shiboken6", "qtawesome")
QT_FREE_VIEWER = (
    "viewer/tiles",
    "viewer/layers",
    "viewer/annotations",
    "viewer/export",
    "viewer/projects",
)


@dataclass(frozen=True)
class Import:
    """One import statement's target as a dotted module name."""

    module: str
    top_level: bool  # runs when the importing module is imported
    type_checking: bool  # under ``if TYPE_CHECKING:`` (never runs)
    by_name: bool = False  # a string naming the module (``importlib.import_module``)


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _python_files(*folders: str, root: Path = ROOT) -> Iterator[Path]:
    for folder in folders:
        path = root / folder
        yield from [path] if path.is_file() else sorted(path.rglob("*.py"))


def _resolve_relative(importer: str, is_package: bool, level: int, module: str | None) -> str:
    """The absolute name a ``from .module import x`` at ``level`` dots refers to."""
    base = importer.split(".")
    # In a package's __init__, one dot is the package itself; in a module, its parent.
    drop = level - 1 if is_package else level
    if drop > len(base):
        raise ValueError(f"relative import beyond the top level in {importer}")
    anchor = base[: len(base) - drop]
    return ".".join([*anchor, module] if module else anchor)


def _imports(path: Path, root: Path = ROOT, known: frozenset[str] = frozenset()) -> list[Import]:
    """Every module ``path`` imports (see the module docstring for what counts).

    ``from package import name`` reports ``package`` (its ``__init__`` runs first), and
    also ``package.name`` when that is a module in ``known``.
    """
    tree = ast.parse(path.read_text(), str(path))
    importer = _module_name(path, root) if path.is_relative_to(root) else path.stem
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def add(module: str, top: bool, tc: bool, names: Iterable[str] = ()) -> None:
        # ``from package import submodule`` runs the package's __init__ first: both count.
        found.append(Import(module, top, tc))
        found.extend(Import(f"{module}.{n}", top, tc) for n in names if f"{module}.{n}" in known)

    def visit(node: ast.AST, top: bool, tc: bool) -> None:
        for child in ast.iter_child_nodes(node):
            child_tc = tc
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                child_tc = True
            if isinstance(child, ast.Import):
                for alias in child.names:
                    found.append(Import(alias.name, top, child_tc))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    module = _resolve_relative(importer, is_package, child.level, child.module)
                else:
                    module = child.module or ""
                add(module, top, child_tc, [a.name for a in child.names])
            elif (
                isinstance(child, ast.Constant)
                and isinstance(child.value, str)
                and child.value in known
            ):
                found.append(Import(child.value, False, child_tc, by_name=True))
            inner = top and not isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            visit(child, inner, child_tc)

    visit(tree, True, False)
    return found


def _project_modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    return {_module_name(p, root): p for p in _python_files(*packages, root=root)}


def _root(module: str) -> str:
    return module.split(".")[0]


def _violations(folders: tuple[str, ...], banned: tuple[str, ...], top_only: bool) -> list[str]:
    known = frozenset(_project_modules(ROOT, PACKAGES))
    found = []
    for path in _python_files(*folders):
        for imp in _imports(path, ROOT, known):
            if imp.type_checking or _root(imp.module) not in banned:
                continue
            if imp.top_level or not top_only:
                found.append(f"{path.relative_to(ROOT)} imports {imp.module}")
    return found


def import_graph(root: Path, packages: Iterable[str]) -> dict[str, set[str]]:
    """Module -> the project modules it imports (any kind of import, see the docstring).

    Importing ``a.b.c`` runs ``a/b/__init__.py`` too, but that implicit edge is not
    counted: a package's ``__init__`` re-exporting its submodules is not a cycle.
    """
    modules = _project_modules(root, packages)
    known = frozenset(modules)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imp in _imports(path, root, known):
            target = imp.module
            while target and target not in known:  # ``import a.b.c.name`` -> a.b.c
                target = target.rpartition(".")[0]
            if target and target != name:
                targets.add(target)
        graph[name] = targets
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0

    def connect(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(cycles)


def test_inference_never_imports_viewer_or_qt() -> None:
    assert _violations(("inference",), ("viewer", *QT), False) == []


def test_qt_free_viewer_packages_import_neither_qt_nor_torch() -> None:
    assert _violations(QT_FREE_VIEWER, (*QT, *HEAVY), False) == []


def test_only_viewer_qt_and_app_import_qt() -> None:
    outside = tuple(
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "viewer").iterdir()
        if p.name not in ("qt", "app.py") and (p.suffix == ".py" or p.is_dir())
    )
    assert _violations(outside, QT, False) == []


def test_only_app_and_qt_touch_both_qt_and_inference() -> None:
    known = frozenset(_project_modules(ROOT, PACKAGES))
    offenders = []
    for path in _python_files("viewer"):
        rel = path.relative_to(ROOT).as_posix()
        roots = {_root(i.module) for i in _imports(path, ROOT, known) if not i.type_checking}
        if (
            "PySide6" in roots
            and "inference" in roots
            and not (rel.startswith("viewer/qt/") or rel == "viewer/app.py")
        ):
            offenders.append(rel)
    assert offenders == []


def test_heavy_libraries_are_imported_lazily() -> None:
    assert _violations(PACKAGES, HEAVY, True) == []


def test_no_import_cycles() -> None:
    assert import_cycles(import_graph(ROOT, PACKAGES)) == []


def test_command_modules_are_in_the_graph() -> None:
    """The dispatcher's by-name imports are edges, so a command's cycle cannot hide."""
    graph = import_graph(ROOT, PACKAGES)
    from inference.cli.main import BENCH_MODULES, COMMAND_MODULES

    assert set(COMMAND_MODULES) | set(BENCH_MODULES) <= graph["inference.cli.main"]


@pytest.mark.parametrize("module", ["viewer.app", "inference.cli.main", "inference.slides"])
def test_importing_does_not_load_torch(module: str) -> None:
    code = f"import sys, {module}; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"


def test_rules_detect_a_violation(tmp_path: Path) -> None:
    """The checker itself fails on a module-level torch import (so it can fail)."""
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\n\ndef f():\n    import torchvision\n")
    found = {(i.module, i.top_level) for i in _imports(bad, tmp_path)}
    assert ("torch", True) in found
    assert ("torchvision", False) in found


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (  # relative import one way, absolute the other
            {"pkg/__init__.py": "", "pkg/a.py": "from . import b\n", "pkg/b.py": "import pkg.a\n"},
            [["pkg.a", "pkg.b"]],
        ),
        (  # a three-module chain, one link only for type checking, one inside a function
            {
                "pkg/__init__.py": "",
                "pkg/a.py": "from pkg.b import x\n",
                "pkg/b.py": "def f():\n    from pkg.sub.c import y\n",
                "pkg/sub/__init__.py": "",
                "pkg/sub/c.py": "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from ..a import z\n",
            },
            [["pkg.a", "pkg.b", "pkg.sub.c"]],
        ),
        (  # a module importing through its package __init__, which imports it back
            {
                "pkg/__init__.py": "from pkg.model import M\n",
                "pkg/model.py": "from pkg import geometry\n",
                "pkg/geometry.py": "",
            },
            [["pkg", "pkg.model"]],
        ),
        (  # a module imported by name (a command table)
            {
                "pkg/__init__.py": "",
                "pkg/main.py": "COMMANDS = ('pkg.cmd',)\n",
                "pkg/cmd.py": "from pkg.main import run\n",
            },
            [["pkg.cmd", "pkg.main"]],
        ),
        (  # no cycle: a package re-exporting its submodules is fine
            {
                "pkg/__init__.py": "from pkg.a import f\n",
                "pkg/a.py": "from pkg.b import g\n",
                "pkg/b.py": "",
            },
            [],
        ),
    ],
)
def test_cycle_detector_finds_cycles(
    tmp_path: Path, files: dict[str, str], expected: list[list[str]]
) -> None:
    """The cycle rule can fail: each kind of import closes a cycle it reports."""
    _write(tmp_path, files)
    assert import_cycles(import_graph(tmp_path, ("pkg",))) == expected


#: The layers of ``inference``, lowest first: a package imports only packages of a lower
#: layer (or its own). ``models.demo`` trains and evaluates the demo models with the
#: whole engine, so it sits on top with the commands.  ``batch`` writes result files
#: (``results``) for one slide or many (Dask tasks); the commands and benchmarks run it.
INFERENCE_LAYERS: tuple[tuple[str, ...], ...] = (
    ("inference.core",),
    ("inference.slides",),
    ("inference.models",),
    ("inference.engine",),
    ("inference.results",),
    ("inference.explain", "inference.evaluation", "inference.slide_level"),
    ("inference.batch",),
    ("inference.models.demo", "inference.bench"),
    ("inference.cli",),
)


def _layer_of(module: str) -> tuple[int, str] | None:
    """The layer index and package of ``module`` (the longest package prefix that matches)."""
    best: tuple[int, str] | None = None
    for rank, packages in enumerate(INFERENCE_LAYERS):
        for package in packages:
            if (module == package or module.startswith(package + ".")) and (
                best is None or len(package) > len(best[1])
            ):
                best = (rank, package)
    return best


def test_inference_packages_import_only_lower_layers() -> None:
    graph = import_graph(ROOT, ("inference",))
    upward = []
    for importer, targets in graph.items():
        mine = _layer_of(importer)
        for target in targets:
            theirs = _layer_of(target)
            if mine and theirs and theirs[1] != mine[1] and theirs[0] >= mine[0]:
                upward.append(f"{importer} -> {target}")
    assert upward == []

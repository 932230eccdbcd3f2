"""The dependency rules of ARCHITECTURE.md, checked on the source, not by good intentions."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "pytorch_grad_cam", "timm")
QT_FREE_VIEWER = ("viewer/tiles", "viewer/layers", "viewer/annotations", "viewer/export")


def _python_files(*folders: str) -> Iterator[Path]:
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def _imports(path: Path) -> Iterator[tuple[str, bool]]:
    """Every imported module name, with whether it is imported at module level.

    Imports under ``if TYPE_CHECKING:`` do not run and are not reported.
    """
    tree = ast.parse(path.read_text(), str(path))

    def visit(node: ast.AST, top_level: bool) -> Iterator[tuple[str, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, top_level
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                yield child.module, top_level
            inner = top_level and not isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            yield from visit(child, inner)

    yield from visit(tree, True)


def _root(module: str) -> str:
    return module.split(".")[0]


def _violations(folders: tuple[str, ...], banned: tuple[str, ...], top_only: bool) -> list[str]:
    found = []
    for path in _python_files(*folders):
        for module, top_level in _imports(path):
            if _root(module) in banned and (top_level or not top_only):
                found.append(f"{path.relative_to(ROOT)} imports {module}")
    return found


def test_inference_never_imports_viewer_or_qt() -> None:
    assert _violations(("inference",), ("viewer", "PySide6", "shiboken6", "qtawesome"), False) == []


def test_qt_free_viewer_packages_import_neither_qt_nor_torch() -> None:
    banned = ("PySide6", "shiboken6", "qtawesome", *HEAVY)
    assert _violations(QT_FREE_VIEWER, banned, False) == []


def test_only_viewer_qt_and_app_import_qt() -> None:
    offenders = []
    for path in _python_files("viewer"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("viewer/qt/") or rel in ("viewer/app.py",):
            continue
        offenders += [
            f"{rel} imports {m}"
            for m, _ in _imports(path)
            if _root(m) in ("PySide6", "shiboken6", "qtawesome")
        ]
    assert offenders == []


def test_only_app_and_qt_touch_both_qt_and_inference() -> None:
    offenders = []
    for path in _python_files("viewer"):
        rel = path.relative_to(ROOT).as_posix()
        roots = {_root(m) for m, _ in _imports(path)}
        if (
            "PySide6" in roots
            and "inference" in roots
            and not (rel.startswith("viewer/qt/") or rel == "viewer/app.py")
        ):
            offenders.append(rel)
    assert offenders == []


def test_heavy_libraries_are_imported_lazily() -> None:
    assert _violations(("inference", "viewer"), HEAVY, True) == []


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
    found = list(_imports(bad))
    assert ("torch", True) in found
    assert ("torchvision", False) in found

"""Import discipline of the refactored packages, checked on the source.

* Inside ``viewer.annotations`` a module imports its siblings by their own module path
  (``from viewer.annotations.geometry import ...``), never through a package
  ``__init__`` (which re-exports for callers outside the package only), so no module
  depends on the package that imports it.
* ``inference.evaluation.plots`` depends on ``inference.evaluation.metrics``, never the
  other way.

Every import counts: at module level, inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imported_modules(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            if node.module:
                yield node.module


def _is_package(module: str) -> bool:
    return (ROOT / module.replace(".", "/") / "__init__.py").is_file()


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / "viewer" / "annotations").rglob("*.py")),
    ids=lambda p: p.relative_to(ROOT).as_posix(),
)
def test_annotation_modules_import_siblings_by_module_path(path: Path) -> None:
    through_a_package = [
        module
        for module in _imported_modules(path)
        if module.startswith("viewer.annotations") and _is_package(module)
    ]
    assert through_a_package == []


def test_metrics_never_imports_plots() -> None:
    metrics = ROOT / "inference" / "evaluation" / "metrics.py"
    plots = ROOT / "inference" / "evaluation" / "plots.py"
    assert "inference.evaluation.plots" not in set(_imported_modules(metrics))
    assert "inference.evaluation.metrics" in set(_imported_modules(plots))

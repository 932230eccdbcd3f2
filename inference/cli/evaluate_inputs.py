"""What ``slidelens evaluate`` reads beside a slide: its result, its run JSON, its truth.

Shared by the binary report (:mod:`inference.cli.evaluate`) and the class and cohort
reports (:mod:`inference.cli.evaluate_classes`).  Every failure is an
:class:`EvaluateError` whose message names the file and the cause.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inference.cli.exit_codes import EXIT_FAILED

if TYPE_CHECKING:
    from inference.results.store import InferenceResult
    from inference.slides import SlideSource


class EvaluateError(Exception):
    """A failure reported as one line (the message names the file and the cause);
    ``code``: the exit code (:data:`EXIT_USAGE` for an option the files cannot honour)."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def load_result(results_dir: Path, slide: Path) -> tuple[InferenceResult, Path]:
    """The result ``slidelens infer --out results_dir`` wrote for ``slide``, and its path."""
    from inference.results.exports import find_result, read_result_npz

    if not results_dir.is_dir():
        raise EvaluateError(f"{results_dir}: no such results folder")
    try:
        path = find_result(results_dir, slide)
    except FileNotFoundError as exc:
        raise EvaluateError(str(exc)) from exc
    damaged = f"{path.name}: not a readable SlideLens result file"
    # checked first: numpy leaks the open file when np.load meets a damaged archive
    if not zipfile.is_zipfile(path):
        raise EvaluateError(f"{damaged} (not an .npz archive; run slidelens infer --force)")
    try:
        return read_result_npz(path), path
    except ValueError as exc:
        raise EvaluateError(str(exc)) from exc
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise EvaluateError(f"{damaged} ({exc}; run slidelens infer --force)") from exc


def run_json_path(result_path: Path) -> Path:
    """The ``<stem>.run.json`` beside a ``<stem>.result.npz``."""
    return result_path.with_name(result_path.name.removesuffix(".result.npz") + ".run.json")


def run_doc(result_path: Path) -> dict[str, Any] | None:
    """The run JSON beside a result, or ``None`` when missing or unreadable."""
    try:
        doc = json.loads(run_json_path(result_path).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def check_run(result_path: Path, source: SlideSource) -> list[str]:
    """Compare the run JSON beside a result with the slide; return notes, raise when the
    result is of a slide of other dimensions."""
    run_json = run_json_path(result_path)
    try:
        doc = json.loads(run_json.read_text("utf-8"))
        slide_doc = doc["slide"]
    except (OSError, ValueError, KeyError, TypeError):
        return [f"{run_json.name} missing or unreadable; the result's slide was not checked"]
    info = source.info
    dims = slide_doc.get("dimensions") if isinstance(slide_doc, dict) else None
    if isinstance(dims, list) and tuple(dims) != tuple(info.dimensions):
        raise EvaluateError(
            f"{result_path.name}: computed for a slide of {dims[0]} x {dims[1]} px, but "
            f"{info.path.name} is "
            f"{info.dimensions[0]} x {info.dimensions[1]}; these are not its results"
        )
    if isinstance(slide_doc, dict) and slide_doc.get("source_id") not in (None, info.source_id):
        return [f"{result_path.name} was computed from a file with other content than this slide"]
    return []


def model_name(result_path: Path) -> str:
    """The model's name as the run JSON beside a result records it ("unknown model" when
    it records none)."""
    doc = run_doc(result_path)
    model = doc.get("model") if doc is not None else None
    name = model.get("name") if isinstance(model, dict) else None
    return str(name) if name else "unknown model"

"""``slidelens models``: list bundled and user models (and folders given with --model).

Prints, per model: name, task, classes, spacing, patch size, source, licence and the held-out
metrics the card reports, or the error of a folder whose card is invalid.  ``--json`` prints
the same as a JSON list.  Exit code 0, or 2 (bad input, :mod:`inference.cli.exit_codes`)
when a folder given with ``--model`` is invalid.

Subcommands: ``slidelens models import PATH`` (:mod:`inference.cli.models_import`) and
``slidelens models convert MODEL --to pt2|onnx`` (:mod:`inference.cli.models_convert`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from inference.cli.exit_codes import EXIT_OK, EXIT_USAGE
from inference.cli.models_convert import add_convert_parser
from inference.cli.models_import import add_import_parser
from inference.models.registry import ModelEntry, list_models, user_models_dir


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``models`` command."""
    parser = subparsers.add_parser(
        "models",
        help="list bundled and user models",
        description=(
            "List the models SlideLens can run: bundled demo models, models in "
            "<user data dir>/models (the user data dir is $SLIDELENS_DATA_DIR when set), "
            "and folders given with --model."
        ),
    )
    parser.add_argument(
        "--model",
        dest="models",
        action="append",
        type=Path,
        default=[],
        metavar="PATH",
        help="also list this model folder (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=run_models)
    actions = parser.add_subparsers(dest="models_command", metavar="ACTION")
    add_import_parser(actions)
    add_convert_parser(actions)


def entry_as_dict(entry: ModelEntry) -> dict[str, Any]:
    """A JSON-ready description of one listed model."""
    out: dict[str, Any] = {
        "name": entry.name,
        "source": entry.source,
        "folder": str(entry.folder),
    }
    card = entry.card
    if card is None:
        out["error"] = entry.error
        return out
    out |= {
        "task": card.task,
        "architecture": card.architecture,
        "class_names": list(card.class_names),
        "spacing_um_px": card.spacing_um_px,
        "patch_size_pixels": card.patch_size_pixels,
        "input_size": card.input_size,
        "licence": card.licence,
        "metrics": dict(card.metrics),
        "description": card.description,
    }
    return out


def _format_entry(entry: ModelEntry) -> str:
    card = entry.card
    if card is None:
        return f"{entry.name}  [{entry.source}]  INVALID\n    {entry.error}"
    metrics = ", ".join(f"{k} {v:.3g}" for k, v in card.metrics.items()) or "none reported"
    lines = [
        f"{entry.name}  [{entry.source}]",
        f"    task {card.task} ({card.architecture}); classes: {', '.join(card.class_names)}",
        f"    patch {card.patch_size_pixels} px at {card.spacing_um_px:g} um/px "
        f"(network input {card.input_size} px)",
        f"    licence: {card.licence or 'not stated'}; held-out metrics: {metrics}",
        f"    folder: {entry.folder}",
    ]
    return "\n".join(lines)


def run_models(args: argparse.Namespace) -> int:
    """Handler of ``slidelens models``."""
    entries = list_models(extra=args.models)
    if args.json:
        print(json.dumps([entry_as_dict(e) for e in entries], indent=2))
    elif not entries:
        print(f"no models found; put model folders in {user_models_dir()}")
    else:
        print("\n".join(_format_entry(e) for e in entries))
    bad_given = [e for e in entries if e.source == "path" and e.card is None]
    if bad_given and args.json:
        for entry in bad_given:
            print(entry.error, file=sys.stderr)
    return EXIT_USAGE if bad_given else EXIT_OK

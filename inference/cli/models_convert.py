"""``slidelens models convert MODEL --to pt2|onnx --out DIR``: another form of a model.

Loads MODEL (a bundled or user model name, or a folder) from its eager weights, or from
its TorchScript program with ``--trust``, and writes DIR: the card, ``model.pt2`` (a
``torch.export`` program, the successor of TorchScript) or ``model.onnx`` (for ONNX
Runtime), and, unless ``--alone``, a copy of the eager weights, so the folder offers
both forms (the fastest runs; explanations use the eager one).  DIR may be MODEL's own
folder: the new file is added there.  The converted model is loaded back and its
logits compared with the source's; the difference is printed.  Exit code 0, or 2 when
the model cannot be loaded or converted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inference.cli.exit_codes import EXIT_OK, EXIT_USAGE


def add_convert_parser(actions: argparse._SubParsersAction) -> None:
    """Register ``slidelens models convert``."""
    parser = actions.add_parser(
        "convert",
        help="write a model as a torch.export program (.pt2) or as ONNX",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument("model", metavar="MODEL", help="model name or folder")
    parser.add_argument("--to", required=True, choices=("pt2", "onnx"), help="the new form")
    parser.add_argument("--out", required=True, type=Path, help="the model folder to write")
    parser.add_argument(
        "--alone", action="store_true", help="write only the new form (no copy of the weights)"
    )
    parser.add_argument("--force", action="store_true", help="write into a folder with files")
    parser.add_argument(
        "--trust", action="store_true", help="allow converting a TorchScript program"
    )
    parser.set_defaults(handler=convert_command)


def convert_command(args: argparse.Namespace) -> int:
    """Handler of ``slidelens models convert``."""
    from inference.models import ModelError, load_card, load_model, resolve_model
    from inference.models.convert import convert_model
    from inference.models.forms import find_forms

    try:
        folder = resolve_model(args.model)
        kinds = [f.kind for f in find_forms(folder, load_card(folder))]
        # the source: eager weights first, then a program to migrate off
        source = next((k for k in ("eager", "torchscript", "pt2") if k in kinds), None)
        model = load_model(folder, trust=args.trust, backend=source)
        result = convert_model(model, args.to, args.out, alone=args.alone, force=args.force)
    except ModelError as exc:
        print(f"slidelens models convert: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"converted: {model.card.name} ({model.kind}) to {args.to}")
    print(f"  wrote: {result.path}")
    for path in result.copied:
        print(f"  copied: {path.name}")
    for change in result.card_changes:
        print(f"  card: {change}")
    print(f"  largest logit difference from the source: {result.max_abs_diff:.2e}")
    print(f"folder: {result.folder}")
    return EXIT_OK

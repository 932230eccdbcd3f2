"""``slidelens models import PATH``: a model folder from a download, a checkpoint or a file.

PATH is a WSInfer zoo download (a model folder, or its Hugging Face cache folder
``models--ORG--NAME`` or ``snapshots/<hash>``), a timm checkpoint folder (``config.json``
with ``architecture`` and ``pretrained_cfg``, plus ``model.safetensors`` or
``pytorch_model.bin``), or a TorchScript, ``.pt2`` or ONNX file (with ``--card`` or a
``config.json`` beside it, or flags).  Prints what it found, what it mapped, what it
could not map, what it checked, and for each missing card field the flag that gives
it.  Exit code 0 when the folder was written, 2 otherwise (nothing is written then).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inference.cli.args import positive_float, positive_int
from inference.cli.exit_codes import EXIT_OK, EXIT_USAGE


def _names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"expected class names separated by commas, not {text!r}")
    return names


def _rgb(text: str) -> tuple[float, float, float]:
    try:
        r, g, b = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected three numbers R,G,B (e.g. 0.485,0.456,0.406), not {text!r}"
        ) from None
    return r, g, b


def add_import_parser(actions: argparse._SubParsersAction) -> None:
    """Register ``slidelens models import``."""
    parser = actions.add_parser(
        "import",
        help="make a model folder from a WSInfer/Hugging Face download, a timm "
        "checkpoint, or a TorchScript, .pt2 or ONNX file",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument("path", type=Path, metavar="PATH", help="what to import")
    parser.add_argument(
        "--out", type=Path, help="where the model folder goes (default: the user models folder)"
    )
    parser.add_argument("--name", help="the model folder's name (default: the source's name)")
    parser.add_argument("--spacing", type=positive_float, help="micrometres per patch pixel")
    parser.add_argument("--patch-size", type=positive_int, help="patch side in pixels")
    parser.add_argument("--classes", type=_names, help="class names, comma separated")
    parser.add_argument("--mean", type=_rgb, help="Normalize mean R,G,B (0..1 scale)")
    parser.add_argument("--std", type=_rgb, help="Normalize std R,G,B (0..1 scale)")
    parser.add_argument(
        "--input-size", type=positive_int, help="network input side (a resize from the patch)"
    )
    parser.add_argument("--card", type=Path, help="a config.json for a TorchScript/.pt2/ONNX file")
    parser.add_argument(
        "--head",
        type=Path,
        help="a head's weights (Linear or MLP, safetensors) for a timm feature extractor",
    )
    parser.add_argument(
        "--pool",
        choices=("default", "cls", "mean", "cls+mean"),
        help="the backbone's embedding the head was trained on (default: timm's pooling; "
        "cls+mean for Virchow)",
    )
    parser.add_argument("--force", action="store_true", help="replace a model folder")
    parser.add_argument(
        "--trust", action="store_true", help="load a program (TorchScript, .pt2) now to check it"
    )
    parser.set_defaults(handler=import_command)


def import_command(args: argparse.Namespace) -> int:
    """Handler of ``slidelens models import``."""
    from inference.models import ModelError
    from inference.models.importing import ImportOptions, ModelImportError, import_model
    from inference.models.registry import user_models_dir

    options = ImportOptions(
        name=args.name,
        spacing=args.spacing,
        patch_size=args.patch_size,
        classes=args.classes,
        mean=args.mean,
        std=args.std,
        input_size=args.input_size,
        card=args.card,
        head=args.head,
        pool=args.pool,
        force=args.force,
        trust=args.trust,
    )
    out_root = args.out or user_models_dir()
    try:
        report = import_model(args.path, out_root, options)
    except ModelImportError as exc:
        _print_report(exc.report)
        print(f"slidelens models import: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ModelError as exc:
        print(f"slidelens models import: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _print_report(report)
    if report.folder is None:
        print("nothing written: the card needs the fields above", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote: {report.folder}")
    return EXIT_OK


def _print_report(report: object) -> None:
    from inference.models.importing import ImportReport

    assert isinstance(report, ImportReport)
    print(f"found: {report.source.label} at {report.source.path}")
    for line in report.found:
        print(f"  {line}")
    for title, lines in (
        ("mapped", report.mapped),
        ("could not map", report.unmapped),
        ("checked", report.checked),
    ):
        if lines:
            print(f"{title}:")
            for line in lines:
                print(f"  {line}")
    if report.missing:
        print("missing:")
        for key, flag in report.missing:
            print(f"  {key}: give {flag}")

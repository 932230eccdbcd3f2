"""Headless commands: ``slidelens synth | models | infer | bench inference | ...``.

Each command lives in its own module and contributes ``add_parser(subparsers)``;
the handler imports what it needs lazily so ``slidelens --help`` stays fast.
The console script (``viewer.__main__``) adds the commands that need Qt
(``bench viewer``, ``bench ui``) and the default "open a slide" behaviour.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from inference.cli.exit_codes import EXIT_INTERRUPTED, EXIT_USAGE

#: Modules that define ``add_parser(subparsers) -> None`` for a top-level command.
COMMAND_MODULES: tuple[str, ...] = (
    "inference.cli.synth",
    "inference.cli.infer",
    "inference.cli.batch",
    "inference.cli.models",
    "inference.cli.explain",
    "inference.cli.evaluate",
    "inference.cli.similar",
)

#: Modules that define ``add_bench_parser(bench_subparsers) -> None``.
BENCH_MODULES: tuple[str, ...] = (
    "inference.bench.inference",
    "inference.bench.cam",
    "inference.bench.pointing",
    "inference.bench.batch",
    "inference.bench.similar",
)


def build_parser(
    extra_commands: Sequence[Callable[[argparse._SubParsersAction], None]] = (),
    extra_bench: Sequence[Callable[[argparse._SubParsersAction], None]] = (),
) -> argparse.ArgumentParser:
    """The ``slidelens`` argument parser with every headless command registered."""
    import importlib

    parser = argparse.ArgumentParser(
        prog="slidelens",
        description="SlideLens: whole-slide viewer with AI overlays (headless commands).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    for add in extra_commands:
        add(sub)
    bench = sub.add_parser("bench", help="benchmarks that print JSON figures")
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="BENCH", required=True)
    for name in BENCH_MODULES:
        importlib.import_module(name).add_bench_parser(bench_sub)
    for add in extra_bench:
        add(bench_sub)
    return parser


def run(args: argparse.Namespace) -> int:
    """Call the handler a subcommand stored in ``args.handler``; return its exit code
    (:mod:`inference.cli.exit_codes`): Ctrl-C that the command does not handle itself
    ends it with :data:`EXIT_INTERRUPTED` and one line, not a traceback."""
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        print(f"\nslidelens {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for headless use (``python -m inference.cli``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return EXIT_USAGE
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

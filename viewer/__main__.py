"""The ``slidelens`` command: open the viewer, or run a headless command.

``slidelens``                 the viewer with no slide
``slidelens SLIDE``           the viewer with SLIDE open
``slidelens demo``            make the demo slide once (user data folder) and open it
``slidelens COMMAND ...``     headless commands: synth, models, infer, export, bench ...
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from inference.cli.exit_codes import EXIT_OK, EXIT_USAGE


def _add_demo(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", help="make the demo slide once, then open it in the viewer")
    parser.add_argument("--regenerate", action="store_true", help="make the demo slide again")
    parser.set_defaults(handler=_run_demo)


def _add_view(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("view", help="open the viewer (optionally with a slide)")
    parser.add_argument("slide", nargs="?", type=Path, help="slide or image to open")
    parser.set_defaults(handler=lambda args: _run_view(args.slide))


def _add_export(sub: argparse._SubParsersAction) -> None:
    from viewer.cli.export import add_parser

    add_parser(sub)


def _add_bench_viewer(bench_sub: argparse._SubParsersAction) -> None:
    from viewer.cli.bench import add_bench_ui_parser, add_bench_viewer_parser

    add_bench_viewer_parser(bench_sub)
    add_bench_ui_parser(bench_sub)


def _run_view(slide: Path | None) -> int:
    from viewer.app import run_gui

    return run_gui(slide)


def _run_demo(args: argparse.Namespace) -> int:
    from viewer.demo import ensure_demo_slide

    slide = ensure_demo_slide(regenerate=args.regenerate)
    return _run_view(slide)


def build_parser() -> argparse.ArgumentParser:
    from inference.cli.main import build_parser as build_headless_parser

    return build_headless_parser(
        extra_commands=(_add_demo, _add_view, _add_export), extra_bench=(_add_bench_viewer,)
    )


HELP_FLAGS = frozenset({"-h", "--help"})
#: The exit code of a command line that names no command and no file (argparse's too).
USAGE_ERROR = EXIT_USAGE


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    return [
        name
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for name in action.choices
    ]


def _no_such_command(parser: argparse.ArgumentParser, word: str, commands: list[str]) -> int:
    """Say that ``word`` is neither a command nor a file, with the closest command."""
    import difflib

    close = difflib.get_close_matches(word, commands, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    parser.print_usage(sys.stderr)
    print(
        f"slidelens: no command or file named '{word}'{hint}\n"
        f"commands: {', '.join(commands)} (slidelens --help says more)",
        file=sys.stderr,
    )
    return USAGE_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``argv`` names, or open the viewer (with a slide, if one is given).

    A first word that is neither a command nor an existing path is a mistake, not a
    slide: it gets a message with the closest command and exit code 2.  ``--help``
    anywhere prints help and never opens a window.
    """
    from inference.core.allocator import tune_allocator

    tune_allocator()
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    commands = _commands(parser)
    if not args_list:
        return _run_view(None)
    first = args_list[0]
    if first not in commands and not first.startswith("-"):
        if not Path(first).expanduser().exists():
            return _no_such_command(parser, first, commands)
        if HELP_FLAGS & set(args_list):
            parser.print_help()
            return EXIT_OK
        return _run_view(Path(first))
    args = parser.parse_args(args_list)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return EXIT_USAGE
    from inference.cli.main import run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())

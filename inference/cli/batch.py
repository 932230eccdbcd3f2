"""``slidelens batch (DIR | SLIDES... | --list FILE) --model M --out OUT``: a model over
many slides as Dask tasks.

Each slide runs ``slidelens infer``'s per-slide function on a Dask worker (a local
cluster of processes by default, or the scheduler at ``--scheduler``) and gets its own
result folder ``OUT/<name>/`` with ``infer``'s files, written whole or not at all.  A
rerun skips slides that are done (same content, model and settings), redoes changed
ones and removes what a crash left half-written.  A failing slide is retried
``--retries`` times and recorded with its message; the others go on.  ``OUT/summary.csv``
and ``summary.json`` list every slide.  Exit code: 0 when every slide is done, 1 when
any failed or was not run, 2 when nothing could start, 130 after Ctrl-C.

The command prints where it runs and the dashboard's address, then one progress line
(slides done, patches/s, time left) on a terminal, or a line per finished slide.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING

from inference.batch.progress import DONE, FAILED, SKIPPED, format_duration
from inference.cli.args import non_negative_int, positive_int
from inference.cli.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from inference.cli.infer import add_slide_options

if TYPE_CHECKING:
    from inference.batch.progress import BatchFigures
    from inference.batch.runner import BatchUpdate

#: Default extra tries of a failing slide.
DEFAULT_RETRIES = 2


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "batch",
        help="run a model over many slides on a Dask cluster; resumable, one folder per slide",
        description=(
            "Run a patch model (or a slide-level head over its patch model) over every "
            "slide of DIR (searched recursively), the SLIDES "
            "given, and/or the paths listed in --list FILE, one Dask task per slide: a "
            "local cluster of worker processes by default (one per GPU, or one per four "
            "cores), or the cluster whose scheduler is at --scheduler.  Each slide gets "
            "OUT/<name>/ with the files of `slidelens infer`; OUT/summary.csv and "
            "summary.json list every slide.  A rerun skips slides that are done."
        ),
    )
    parser.add_argument(
        "inputs", nargs="*", type=Path, metavar="DIR|SLIDE", help="a folder of slides, or slides"
    )
    parser.add_argument(
        "--list", type=Path, metavar="FILE", help="a text file of slide paths, one a line"
    )
    parser.add_argument(
        "--model",
        required=True,
        help="bundled model name or model folder (a patch model or a slide-level head)",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="a running Dask scheduler (e.g. tcp://host:8786); default: a local cluster",
    )
    parser.add_argument(
        "--workers", type=positive_int, help="worker processes of the local cluster"
    )
    parser.add_argument(
        "--threads-per-worker",
        type=positive_int,
        metavar="T",
        help="slides each local worker runs at once (default 1)",
    )
    parser.add_argument(
        "--retries",
        type=non_negative_int,
        default=DEFAULT_RETRIES,
        help=f"extra tries of a slide that fails (default {DEFAULT_RETRIES})",
    )
    parser.add_argument(
        "--no-dashboard", action="store_true", help="do not serve the Dask dashboard"
    )
    add_slide_options(parser)
    parser.set_defaults(handler=batch_command)


class BatchProgressBar:
    """Draws a batch's updates: a live line on a terminal, a line per slide otherwise."""

    WIDTH = 24

    def __init__(self, stream: IO[str], *, quiet: bool = False) -> None:
        self.stream = stream
        self.quiet = quiet
        self.live = stream.isatty() and not quiet
        self._drawn = False

    def __call__(self, update: BatchUpdate) -> None:
        if update.kind in ("cluster", "note"):
            self._print(update.message)
        elif update.kind == "plan":
            skipped = sum(s.status == SKIPPED for s in update.states)
            if skipped:
                self._print(f"{skipped} of {len(update.states)} slides done before: skipped")
        elif update.kind == "slide":
            state = update.states[0]
            if state.status == FAILED:
                self._print(f"{state.item.slide}: failed: {state.message}")
            elif state.status == DONE and not self.live:
                seconds = f" in {state.seconds:.1f} s" if state.seconds is not None else ""
                self._print(f"{state.name}: done{seconds}  {self._line(update.figures)}")
            self._draw(update.figures)
        elif update.kind == "tick":
            self._draw(update.figures)
        elif update.kind == "end":
            self._draw(update.figures, final=True)

    def _line(self, f: BatchFigures) -> str:
        failed = f", {f.failed} failed" if f.failed else ""
        return (
            f"{f.finished - f.failed - f.cancelled}/{f.total} slides{failed}, "
            f"{f.patches} patches {f.patches_per_s:.1f}/s, "
            f"{format_duration(f.eta_s)} left"
        )

    def _draw(self, figures: BatchFigures, *, final: bool = False) -> None:
        if not self.live:
            return
        frac = figures.finished / figures.total if figures.total else 1.0
        filled = round(frac * self.WIDTH)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(f"\r[{bar}] {self._line(figures)}\x1b[K" + ("\n" if final else ""))
        self.stream.flush()
        self._drawn = not final

    def _print(self, text: str) -> None:
        if self.quiet and "failed" not in text:
            return
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self._drawn = False
        self.stream.write(text + "\n")
        self.stream.flush()


def batch_command(args: argparse.Namespace) -> int:
    """The ``batch`` handler: returns the exit code."""
    from inference.batch.cluster import ClusterRequest
    from inference.batch.inputs import BatchInputError, collect_slides
    from inference.batch.runner import BatchRequest, BatchRun, BatchSetupError
    from inference.batch.settings import SlideSettings
    from inference.batch.summary import SUMMARY_CSV

    err = sys.stderr
    if not args.inputs and args.list is None:
        print("slidelens batch: give a folder of slides, slide files, or --list FILE", file=err)
        return EXIT_USAGE
    if args.scheduler and (args.workers or args.threads_per_worker):
        print(
            "slidelens batch: --workers and --threads-per-worker size a local cluster; "
            "with --scheduler the cluster's own workers run the slides",
            file=err,
        )
        return EXIT_USAGE
    try:
        items = collect_slides(args.inputs, args.list, args.out)
    except BatchInputError as exc:
        print(f"slidelens batch: {exc}", file=err)
        return EXIT_USAGE
    request = BatchRequest(
        items=items,
        out=args.out,
        model=args.model,
        settings=SlideSettings.from_namespace(args),
        retries=args.retries,
    )
    cluster = ClusterRequest(
        scheduler=args.scheduler,
        workers=args.workers,
        threads_per_worker=args.threads_per_worker,
        dashboard=not args.no_dashboard,
    )
    bar = BatchProgressBar(err, quiet=args.quiet)
    run = BatchRun(request, cluster=cluster, listener=bar)
    try:
        outcome = run.run()
    except BatchSetupError as exc:
        print(f"slidelens batch: {exc}", file=err)
        return EXIT_USAGE
    except KeyboardInterrupt:
        done = sum(s.status in (DONE, SKIPPED) for s in run.states)
        print(
            f"\nslidelens batch: interrupted; {done} of {len(run.states)} slides are done "
            f"and stay done, nothing is half-written; run again to resume",
            file=err,
        )
        return EXIT_INTERRUPTED
    figures = outcome.figures
    counts = {
        "done": figures.done,
        "skipped": figures.skipped,
        "failed": figures.failed,
        "not run": figures.cancelled,
    }
    text = ", ".join(f"{n} {what}" for what, n in counts.items() if n)
    print(f"slidelens batch: {text}; summary in {args.out / SUMMARY_CSV}", file=err)
    return EXIT_OK if outcome.exit_code == 0 else EXIT_FAILED

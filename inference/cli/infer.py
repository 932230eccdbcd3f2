"""``slidelens infer SLIDE... --model NAME|PATH --out DIR``: headless whole-slide inference.

Per slide it writes ``<stem>.csv`` (one row per patch), ``<stem>.geojson`` (QuPath),
``<stem>.heatmap.tiff`` (pyramidal probability of the last class), ``<stem>.result.npz``
(the whole result, for ``slidelens evaluate`` / ``export`` and the viewer) and
``<stem>.run.json`` (model hash, parameters, versions, timings, counts), the JSON last.
A slide whose JSON says it is complete is skipped, so an interrupted run resumes where
it stopped (``--force`` recomputes).  A slide that fails is reported and the next one
goes on; the exit code is 1 when any slide failed, 2 when nothing could start.

``--model`` may name a slide-level head (:mod:`inference.slide_level.pipeline`): its
feature extractor runs, with embeddings, and the head's answer goes into
``<stem>.slide.json`` and its attention into the ``.result.npz``; so does the answer of
a patch model whose card declares ``slidelens.aggregation``.

One slide's work is :func:`inference.batch.one_slide.infer_slide` (``slidelens batch``
runs the same function per slide).  The progress bar is drawn here, on stderr; the
engine only yields batches.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

from inference.batch.one_slide import (
    SlideRun,
    describe_failure,
    infer_slide,
    is_complete,
    load_slide_model,
    output_paths,
    output_stem,
)
from inference.batch.settings import SlideSettings
from inference.cli.args import device, parse_region, positive_float, positive_int
from inference.cli.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from inference.engine.tissue import DEFAULT_TISSUE_THRESHOLD

if TYPE_CHECKING:
    from inference.engine.job import BatchResult

log = logging.getLogger(__name__)

#: Exit codes (defined once for every command).
EXIT_SLIDE_FAILED = EXIT_FAILED


# -- argument types ------------------------------------------------------------------------


def _overlap(text: str) -> float:
    from inference.engine.patches import MAX_OVERLAP

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction, not {text!r}") from None
    if not 0.0 <= value <= MAX_OVERLAP:
        raise argparse.ArgumentTypeError(
            f"overlap is a fraction of the patch side between 0 and {MAX_OVERLAP}, not {value}"
        )
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "infer",
        help="run a model on whole slides; write CSV, GeoJSON, heatmap TIFF and run JSON",
        description=(
            "Run a patch model on each SLIDE and write <stem>.csv, <stem>.geojson, "
            "<stem>.heatmap.tiff and <stem>.run.json into --out.  Slides whose results "
            "exist are skipped (resumable) unless --force."
        ),
    )
    parser.add_argument("slides", nargs="+", type=Path, metavar="SLIDE", help="slide files")
    parser.add_argument("--model", required=True, help="bundled model name or model folder")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    add_slide_options(parser)
    parser.set_defaults(handler=infer_command)


def add_slide_options(parser: argparse.ArgumentParser) -> None:
    """The per-slide options ``slidelens infer`` and ``slidelens batch`` share (read back
    by :meth:`~inference.batch.settings.SlideSettings.from_namespace`), and ``-q``."""
    parser.add_argument(
        "--region",
        type=parse_region,
        help="only this level-0 rectangle X,Y,W,H (default: the whole slide)",
    )
    parser.add_argument("--device", type=device, default="auto", help="cpu, cuda or auto (default)")
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument(
        "--overlap",
        type=_overlap,
        default=None,
        help="fraction of a patch neighbours overlap (default 0; 0.25 for segmentation)",
    )
    parser.add_argument(
        "--mpp", type=positive_float, help="level-0 microns per pixel, for slides without it"
    )
    parser.add_argument(
        "--tissue-threshold",
        type=float,
        default=DEFAULT_TISSUE_THRESHOLD,
        help=f"skip patches with less tissue than this fraction (default "
        f"{DEFAULT_TISSUE_THRESHOLD}; 0 computes every patch)",
    )
    parser.add_argument(
        "--num-readers", type=positive_int, help="patch reader threads (with --cpu-lanes 1)"
    )
    parser.add_argument(
        "--cpu-lanes",
        type=positive_int,
        help="on the CPU, batches computed at once, each on its own thread "
        "(default: one per core; 1: one batch at a time on every core)",
    )
    parser.add_argument(
        "--torch-threads", type=positive_int, help="torch threads of each lane on the CPU"
    )
    parser.add_argument(
        "--trust",
        action="store_true",
        help="allow the model's programs (TorchScript, .pt2): they can run code when loaded",
    )
    parser.add_argument("--force", action="store_true", help="recompute slides with results")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


# -- progress ------------------------------------------------------------------------------


class ProgressBar:
    """A one-line progress bar on a terminal; a summary line otherwise."""

    WIDTH = 28

    def __init__(self, label: str, stream: IO[str], *, enabled: bool = True) -> None:
        self.label = label
        self.stream = stream
        self.enabled = enabled
        self.live = enabled and stream.isatty()
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self.done = 0
        self.total = 0

    def update(self, batch: BatchResult) -> None:
        self.done, self.total = batch.done, batch.total
        now = time.perf_counter()
        if self.live and (now - self._last_draw > 0.1 or self.done >= self.total):
            self._last_draw = now
            self.stream.write("\r" + self._line(now))
            self.stream.flush()

    def _line(self, now: float) -> str:
        frac = self.done / self.total if self.total else 1.0
        filled = round(frac * self.WIDTH)
        rate = self.done / max(now - self.start, 1e-9)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        return f"{self.label} [{bar}] {self.done}/{self.total} patches {rate:.1f}/s"

    def close(self, note: str = "") -> None:
        if not self.enabled:
            return
        line = self._line(time.perf_counter()) + (f"  {note}" if note else "")
        self.stream.write(("\r" if self.live else "") + line + "\n")
        self.stream.flush()


# -- the command -----------------------------------------------------------------------------


def infer_command(args: argparse.Namespace) -> int:
    """The ``infer`` handler: returns the exit code."""
    from inference.engine.device import resolve_device
    from inference.engine.job import InferenceError
    from inference.models import ModelError

    err = sys.stderr
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"slidelens infer: cannot create the output folder {args.out}: {exc}", file=err)
        return EXIT_USAGE
    try:
        from inference.slide_level.pipeline import resolve_pipeline

        device = resolve_device(args.device)
        # a slide-level head names its patch model (its feature extractor); a patch
        # model's card may declare how its outputs make a slide-level answer
        pipeline = resolve_pipeline(args.model, trust=args.trust)
        model = load_slide_model(str(pipeline.patch_folder), trust=args.trust, device=device)
    except (ModelError, InferenceError, OSError) as exc:
        print(f"slidelens infer: {exc}", file=err)
        return EXIT_USAGE

    settings = SlideSettings.from_namespace(args)
    quiet = args.quiet

    def progress(slide: Path) -> ProgressBar:
        return ProgressBar(slide.name, err, enabled=not quiet)

    stems: dict[str, Path] = {}
    runs: list[SlideRun] = []
    for slide in args.slides:
        stem = output_stem(slide)
        if stem in stems and stems[stem] != slide:
            msg = f"same output name {stem!r} as {stems[stem]}; run it with another --out"
            print(f"{slide}: failed: {msg}", file=err)
            runs.append(SlideRun(slide, "failed", msg))
            continue
        stems[stem] = slide
        if not args.force and is_complete(output_paths(args.out, slide, stem)):
            if not quiet:
                print(f"{slide.name}: results exist in {args.out}, skipped", file=err)
            runs.append(SlideRun(slide, "skipped"))
            continue
        try:
            run = infer_slide(
                slide,
                model,
                settings,
                device,
                args.out,
                stem=stem,
                progress=progress,
                aggregator=pipeline.aggregator,
            )
            run.result = None  # the files hold it; keep memory flat over many slides
            runs.append(run)
            if run.status == "cached" and not quiet:
                print(
                    f"{slide.name}: reused the cached result of the same model and settings "
                    f"(not recomputed; --force or --no-cache recomputes)",
                    file=err,
                )
        except KeyboardInterrupt:
            print(f"\n{slide.name}: interrupted; run again to resume", file=err)
            raise
        except Exception as exc:  # report, go on with the next slide
            log.debug("slide %s failed", slide, exc_info=True)
            print(f"{slide}: failed: {describe_failure(exc)}", file=err)
            runs.append(SlideRun(slide, "failed", str(exc)))

    failed = [r for r in runs if r.status == "failed"]
    if not quiet and len(args.slides) > 1:
        summary = ", ".join(
            f"{sum(r.status == s for r in runs)} {s}"
            for s in ("done", "cached", "skipped", "failed")
            if any(r.status == s for r in runs)
        )
        print(f"slidelens infer: {summary}", file=err)
    return EXIT_SLIDE_FAILED if failed else EXIT_OK

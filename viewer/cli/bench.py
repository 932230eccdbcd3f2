"""``slidelens bench viewer``: tile pipeline throughput, first frames, and pan smoothness."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from inference.cli.exit_codes import EXIT_OK, EXIT_USAGE


def add_bench_viewer_parser(bench_sub: argparse._SubParsersAction) -> None:
    parser = bench_sub.add_parser(
        "viewer",
        help="tile pipeline vs raw read_region, first frames, pan stalls (prints JSON)",
        description=(
            "Measures, in one run: raw read_region of 256 px tiles vs the viewer's tile "
            "pipeline on the same threads; time to the first coarse and sharp frame after "
            "opening; lateness of a 5 ms heartbeat during a scripted pan and zoom tour; RSS; "
            "what a display adjustment costs a tile against reading it, and what "
            "changing the adjustment costs (repaint time, tiles read)."
        ),
    )
    parser.add_argument("--slide", type=Path, help="slide to measure (default: the demo slide)")
    parser.add_argument("--threads", type=int, default=2, help="reader threads (default 2)")
    parser.add_argument("--tiles", type=int, default=1500, help="tiles for the throughput test")
    parser.add_argument("--tour-seconds", type=float, default=10.0, help="pan/zoom tour length")
    parser.add_argument("--cache-mb", type=int, default=512, help="tile cache cap")
    parser.add_argument("--width", type=int, default=1600, help="window width")
    parser.add_argument("--height", type=int, default=1000, help="window height")
    parser.add_argument(
        "--adjust",
        metavar="B,C,G",
        type=_adjustment,
        help="brightness, contrast and gamma in effect for the run (e.g. 0.05,1.3,0.85; "
        "default none)",
    )
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    parser.set_defaults(handler=_run)


def _adjustment(text: str) -> object:
    """``B,C,G``: a display adjustment."""
    from viewer.tiles.adjustment import DisplayAdjustment

    try:
        brightness, contrast, gamma = (float(v) for v in text.split(","))
        return DisplayAdjustment(brightness, contrast, gamma)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"--adjust is brightness,contrast,gamma (e.g. 0.05,1.3,0.85): {exc}"
        ) from None


def add_bench_ui_parser(bench_sub: argparse._SubParsersAction) -> None:
    parser = bench_sub.add_parser(
        "ui",
        help="GUI smoothness while a whole-slide model job runs, and the job's rate (JSON)",
        description=(
            "Runs a whole-slide model job from the viewer while a scripted pan and zoom "
            "tour plays: lateness of a 5 ms heartbeat (stall p99 / max), the job's patches "
            "per second, and the same job's rate with no window, measured in the same run."
        ),
    )
    parser.add_argument("--slide", type=Path, help="slide (default: the demo slide)")
    parser.add_argument("--model", help="model name or folder (default: the demo classifier)")
    parser.add_argument("--tour-seconds", type=float, default=10.0, help="pan/zoom tour length")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-job-seconds", type=float, default=60.0, help="headless cap")
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    parser.set_defaults(handler=_run_ui)


def _default_classifier() -> Path:
    from inference.models.registry import bundled_model

    entry = bundled_model("classification")
    if entry is None:
        raise SystemExit("slidelens bench ui: no bundled classifier found; pass --model")
    return entry.folder


def _run_ui(args: argparse.Namespace) -> int:
    from inference.models import ModelNotFoundError, resolve_model
    from viewer.qt.bench.ui import UiBenchConfig, run_ui_bench

    slide = args.slide
    if slide is None:
        from viewer.demo import ensure_demo_slide

        slide = ensure_demo_slide()
    try:
        model = resolve_model(args.model) if args.model else _default_classifier()
    except ModelNotFoundError as exc:
        print(f"slidelens bench ui: {exc}", file=sys.stderr)
        return EXIT_USAGE
    config = UiBenchConfig(
        slide=slide,
        model=model,
        tour_seconds=args.tour_seconds,
        batch_size=args.batch_size,
        max_job_seconds=args.max_job_seconds,
    )
    result = run_ui_bench(config, log=None if args.json else sys.stderr)
    print(json.dumps(result, indent=None if args.json else 2))
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from viewer.qt.bench.viewer import ViewerBenchConfig, run_viewer_bench

    slide = args.slide
    if slide is None:
        from viewer.demo import ensure_demo_slide

        slide = ensure_demo_slide()
    config = ViewerBenchConfig(
        slide=slide,
        threads=args.threads,
        n_tiles=args.tiles,
        tour_seconds=args.tour_seconds,
        cache_mb=args.cache_mb,
        window_size=(args.width, args.height),
        **({"adjustment": args.adjust} if args.adjust is not None else {}),
    )
    result = run_viewer_bench(config, log=None if args.json else sys.stderr)
    print(json.dumps(result, indent=None if args.json else 2))
    return EXIT_OK

"""``slidelens synth``: write a synthetic H&E-like slide and its ground truth.

``--kind tumour`` (the default) needs ``--width`` and ``--height``; ``--kind prostate``
writes a needle biopsy of 6 x 2 mm unless they are given, with a label mask, class
polygons and ``OUT.truth.json`` (its grade group is the seed modulo 6).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from inference.cli.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="write a synthetic H&E-like pyramidal slide plus its ground truth",
        description=(
            "Write OUT (a pyramidal tiled JPEG TIFF that OpenSlide reads as generic-tiff) "
            "and, beside it, OUT.mask.png (tumour mask) and OUT.geojson (tumour polygons "
            "in level-0 pixels). The same seed and size always give the same slide.  "
            "--kind prostate writes a needle biopsy with stroma, benign glands and Gleason "
            "patterns 3 (small separate glands), 4 (fused cribriform nests) and 5 (sheets "
            "without glands): OUT.mask.png is a label image (0 background, 1 stroma, "
            "2 benign, 3-5 Gleason 3-5), OUT.geojson holds class polygons and "
            "OUT.truth.json the areas, Gleason score and ISUP grade group (the seed "
            "modulo 6)."
        ),
    )
    parser.add_argument("out", type=Path, help="slide to write, e.g. synthetic.tiff")
    parser.add_argument(
        "--kind",
        choices=("tumour", "prostate"),
        default="tumour",
        help="tumour islands (default) or a prostate needle biopsy",
    )
    parser.add_argument(
        "--width", type=int, help="level-0 width in pixels (prostate: 6 mm by default)"
    )
    parser.add_argument(
        "--height", type=int, help="level-0 height in pixels (prostate: 2 mm by default)"
    )
    parser.add_argument("--seed", type=int, default=0, help="layout and texture seed")
    parser.add_argument("--mpp", type=float, default=0.5, help="micrometres per pixel (0.5)")
    parser.add_argument("--quality", type=int, default=85, help="JPEG quality (85)")
    parser.add_argument("--workers", type=int, default=None, help="render threads")
    parser.set_defaults(handler=synth_command)


def synth_command(args: argparse.Namespace) -> int:
    from inference.slides.synth.writer import SynthParams, write_synthetic_slide

    width, height = args.width, args.height
    if args.kind == "tumour" and (width is None or height is None):
        print("slidelens synth: --width and --height are required", file=sys.stderr)
        return EXIT_USAGE
    try:
        if width is None or height is None:
            default = SynthParams.prostate(seed=args.seed, mpp=args.mpp)
            width, height = width or default.width, height or default.height
        params = SynthParams(
            width=width,
            height=height,
            seed=args.seed,
            mpp=args.mpp,
            jpeg_quality=args.quality,
            kind=args.kind,
        )
    except ValueError as exc:
        print(f"slidelens synth: {exc}", file=sys.stderr)
        return EXIT_USAGE
    start = time.perf_counter()
    last_shown = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if done == total or now - last_shown[0] > 0.2:
            last_shown[0] = now
            print(f"\r{args.out.name}: {done}/{total} tiles", end="", file=sys.stderr, flush=True)

    try:
        out = write_synthetic_slide(args.out, params, progress=progress, workers=args.workers)
    except OSError as exc:
        print(f"\nslidelens synth: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    elapsed = time.perf_counter() - start
    print(file=sys.stderr)
    levels = ", ".join(f"{w}x{h}" for w, h in out.level_dimensions)
    print(f"wrote {out.slide} ({levels}) in {elapsed:.1f} s")
    print(
        f"  tissue {out.tissue_fraction:.1%} of the slide, "
        f"tumour {out.tumour_fraction_of_tissue:.1%} of the tissue"
    )
    print(f"  ground truth: {out.mask} (1 px = {out.mask_l0_per_px} level-0 px), {out.geojson}")
    if out.truth is not None:
        print(
            f"  grade: ISUP {out.truth['isup_grade']} "
            f"(Gleason {out.truth['gleason_score'] or 'none: no tumour'}), {out.truth_json}"
        )
    return EXIT_OK

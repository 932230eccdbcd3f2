"""``slidelens synth``: write a synthetic H&E-like slide and its tumour ground truth."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="write a synthetic H&E-like pyramidal slide plus its ground truth",
        description=(
            "Write OUT (a pyramidal tiled JPEG TIFF that OpenSlide reads as generic-tiff) "
            "and, beside it, OUT.mask.png (tumour mask) and OUT.geojson (tumour polygons "
            "in level-0 pixels). The same seed and size always give the same slide."
        ),
    )
    parser.add_argument("out", type=Path, help="slide to write, e.g. synthetic.tiff")
    parser.add_argument("--width", type=int, required=True, help="level-0 width in pixels")
    parser.add_argument("--height", type=int, required=True, help="level-0 height in pixels")
    parser.add_argument("--seed", type=int, default=0, help="layout and texture seed")
    parser.add_argument("--mpp", type=float, default=0.5, help="micrometres per pixel (0.5)")
    parser.add_argument("--quality", type=int, default=85, help="JPEG quality (85)")
    parser.add_argument("--workers", type=int, default=None, help="render threads")
    parser.set_defaults(handler=synth_command)


def synth_command(args: argparse.Namespace) -> int:
    from inference.slides.synth.writer import SynthParams, write_synthetic_slide

    try:
        params = SynthParams(
            width=args.width,
            height=args.height,
            seed=args.seed,
            mpp=args.mpp,
            jpeg_quality=args.quality,
        )
    except ValueError as exc:
        print(f"slidelens synth: {exc}", file=sys.stderr)
        return 2
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
        return 1
    elapsed = time.perf_counter() - start
    print(file=sys.stderr)
    levels = ", ".join(f"{w}x{h}" for w, h in out.level_dimensions)
    print(f"wrote {out.slide} ({levels}) in {elapsed:.1f} s")
    print(
        f"  tissue {out.tissue_fraction:.1%} of the slide, "
        f"tumour {out.tumour_fraction_of_tissue:.1%} of the tissue"
    )
    print(f"  ground truth: {out.mask} (1 px = {out.mask_l0_per_px} level-0 px), {out.geojson}")
    return 0

"""``slidelens explain SLIDE --model M (--at X,Y | --region X,Y,W,H) --method NAME --out cam.png``.

Writes three files: ``cam.png`` (the slide pixels of the patch or region with the CAM
blended in a colour map), ``cam.json`` (provenance: model and hash, method, layer, class,
normalisation, geometry in level-0 pixels, class scores, timing, versions) and
``cam.npy`` (the raw blended CAM, float32, NaN where nothing was explained).  Every
failure a user can cause ends in one line naming the file or value and a non-zero exit
(:mod:`inference.cli.exit_codes`): 2 for what the command line asks wrongly (method,
class, layer, model, a region outside the slide or too big, a pixel size needed), 1 when
the slide cannot be read or the outputs written, 130 for Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from inference.cli.args import device, parse_region, positive_float
from inference.cli.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from inference.explain.methods import METHODS
from inference.explain.progress import patch_count

if TYPE_CHECKING:
    from inference.explain.requests import CamResult
    from inference.slides import SlideSource

#: Opacity of the CAM over the slide at the top of the scale (at 0 it is ``_ALPHA_MIN``).
_ALPHA_MAX = 0.65
_ALPHA_MIN = 0.15


def parse_point(text: str) -> tuple[float, float]:
    """``X,Y`` in level-0 pixels."""
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"point must be X,Y in level-0 pixels (e.g. 12000,8000), not {text!r}"
        ) from None
    return x, y


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="explain a patch or region with a CAM; write overlay PNG, JSON and raw .npy",
        description=(
            "Explain what made MODEL score a class on the patch under --at or on every "
            "tissue patch of --region.  Writes OUT (overlay image), OUT with .json "
            "(provenance) and OUT with .npy (raw CAM in slide coordinates)."
        ),
    )
    parser.add_argument("slide", type=Path, metavar="SLIDE", help="slide file")
    parser.add_argument("--model", required=True, help="bundled model name or model folder")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--at", type=parse_point, metavar="X,Y", help="level-0 point: its patch")
    where.add_argument(
        "--region", type=parse_region, metavar="X,Y,W,H", help="level-0 rectangle: its patches"
    )
    parser.add_argument(
        "--method", default="gradcam", help=f"one of {', '.join(METHODS)} (default gradcam)"
    )
    parser.add_argument("--class", dest="target", help="class name or index (default: predicted)")
    parser.add_argument("--layer", help="dotted module path to explain (default: the card's)")
    parser.add_argument(
        "--mpp", type=positive_float, help="level-0 microns per pixel, for slides without it"
    )
    parser.add_argument(
        "--overlap",
        type=float,
        default=None,
        help="region patches overlap (default 0.5; 0.25 for slow methods)",
    )
    parser.add_argument(
        "--percentile", type=float, default=None, help="raw percentile shown as 1 (default 99)"
    )
    parser.add_argument(
        "--trust",
        action="store_true",
        help="allow the model's programs (TorchScript, .pt2): they can run code when loaded",
    )
    parser.add_argument("--device", type=device, default="cpu", help="cpu (default), cuda, auto")
    parser.add_argument("--out", required=True, type=Path, help="overlay image (.png)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=explain_command)


class _Bar:
    """Progress of one explanation on stderr (a live bar on a terminal, else nothing):
    ``LABEL: 12 patches [####----] 35/140 passes``, a pass being the model run once on
    one patch or on one masked copy of it (the viewer's Explain panel counts the same)."""

    def __init__(self, label: str, stream: IO[str], enabled: bool) -> None:
        self.label = label
        self.stream = stream
        self.live = enabled and stream.isatty()
        self.last = 0.0
        self.patches: int | None = None

    def planned(self, patches: int) -> None:
        """How many patches the passes are for (told before the first report)."""
        self.patches = patches

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if not self.live or (now - self.last < 0.1 and done < total):
            return
        self.last = now
        frac = done / total if total else 0.0
        bar = "#" * round(frac * 28) + "-" * (28 - round(frac * 28))
        what = "" if self.patches is None else f" {patch_count(self.patches)}"
        self.stream.write(f"\r{self.label}:{what} [{bar}] {done}/{total} passes")
        self.stream.flush()

    def close(self) -> None:
        if self.live:
            self.stream.write("\n")
            self.stream.flush()


def slide_pixels(source: SlideSource, result: CamResult) -> np.ndarray:
    """The slide's RGB under a CAM, one pixel per CAM pixel (read from the best level)."""
    import cv2

    from inference.core.geometry import best_level_for_downsample

    info = source.info
    h, w = result.raw.shape
    level = best_level_for_downsample(info.level_downsamples, result.l0_per_px)
    lv_ds = float(info.level_downsamples[level])
    l0_x, l0_y = result.l0_origin
    lv_x, lv_y = round(l0_x / lv_ds), round(l0_y / lv_ds)
    lv_w = max(1, round(w * result.l0_per_px / lv_ds))
    lv_h = max(1, round(h * result.l0_per_px / lv_ds))
    rgb = source.read_region(level, lv_x, lv_y, lv_w, lv_h)
    if rgb.shape[:2] != (h, w):
        shrink = rgb.shape[0] > h
        rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return np.asarray(rgb, np.uint8)


def overlay(rgb: np.ndarray, normalised: np.ndarray) -> np.ndarray:
    """The CAM (0..1, NaN: none) in the turbo colour map over ``rgb``; opacity grows with
    the value, so low values leave the tissue visible."""
    import cv2

    valid = np.isfinite(normalised)
    values = np.where(valid, normalised, 0.0)
    colours = cv2.applyColorMap(np.round(values * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    colours = cv2.cvtColor(colours, cv2.COLOR_BGR2RGB).astype(np.float32)
    alpha = np.where(valid, _ALPHA_MIN + (_ALPHA_MAX - _ALPHA_MIN) * values, 0.0)[..., None]
    out = rgb.astype(np.float32) * (1 - alpha) + colours * alpha
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def write_outputs(
    out: Path, source: SlideSource, result: CamResult, extra: dict[str, Any]
) -> dict[str, Path]:
    """Write ``out`` (overlay PNG), its ``.json`` and ``.npy`` siblings atomically."""
    import io

    from PIL import Image

    from inference.core.atomic_io import atomic_write, atomic_write_text

    paths = {"png": out, "json": out.with_suffix(".json"), "npy": out.with_suffix(".npy")}
    image = overlay(slide_pixels(source, result), result.normalised())
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    atomic_write(paths["png"], lambda fh: fh.write(buffer.getvalue()))
    atomic_write(paths["npy"], lambda fh: np.save(fh, result.raw))
    doc = {
        **extra,
        "outputs": {k: p.name for k, p in paths.items()},
        "cam": {
            "l0_origin": list(result.l0_origin),
            "l0_per_px": result.l0_per_px,
            "shape": list(result.raw.shape),
            "vmax": result.vmax,
            "class_index": result.class_index,
            "class_name": result.class_name,
            "overlay": f"turbo colour map, opacity {_ALPHA_MIN}..{_ALPHA_MAX} with the value",
        },
        "scores": dict(result.scores),
        "patches": result.patch_l0_rects.tolist(),
        "provenance": dict(result.provenance),
    }
    atomic_write_text(paths["json"], json.dumps(doc, indent=1, default=str))
    return paths


def explain_command(args: argparse.Namespace) -> int:
    """The ``explain`` handler: returns the exit code."""
    from inference.engine.device import resolve_device
    from inference.engine.job import InferenceError
    from inference.engine.patches import MissingMppError
    from inference.explain.methods import ExplainCancelled, ExplainError
    from inference.explain.requests import CamRequest
    from inference.models import ModelError, load_model, resolve_model
    from inference.slides import SlideError, open_slide

    err = sys.stderr
    out: Path = args.out
    if out.suffix.lower() != ".png":
        print(f"slidelens explain: --out {out} must end in .png", file=err)
        return EXIT_USAGE
    kwargs: dict[str, Any] = {"method": args.method, "layer": args.layer, "target": args.target}
    if args.overlap is not None:
        kwargs["overlap"] = args.overlap
    if args.percentile is not None:
        kwargs["percentile"] = args.percentile
    request = CamRequest(**kwargs)
    bar = _Bar(f"{args.slide.name} {args.method}", err, not args.quiet)
    try:
        from inference.explain.methods import method_spec

        method_spec(args.method)
        device = resolve_device(args.device)
        model = load_model(resolve_model(args.model), trust=args.trust, device=device)
    except (ExplainError, ModelError, InferenceError) as exc:
        print(f"slidelens explain: {exc}", file=err)
        return EXIT_USAGE
    try:
        source = open_slide(args.slide)
    except SlideError as exc:
        print(f"slidelens explain: {exc}", file=err)
        return EXIT_FAILED
    try:
        if args.at is not None:
            from inference.explain.service import explain_patch

            result = explain_patch(
                source, model, args.at[0], args.at[1], request, mpp=args.mpp, progress=bar
            )
        else:
            from inference.explain.service import explain_region

            result = explain_region(source, model, args.region, request, mpp=args.mpp, progress=bar)
        bar.close()
        extra = {
            "command": "explain",
            "slide": str(args.slide.resolve()),
            "request": {
                "at": None if args.at is None else list(args.at),
                "region": None if args.region is None else list(args.region.to_int()),
                "method": args.method,
                "class": args.target,
                "layer": args.layer,
                "mpp": args.mpp,
                "device": device,
            },
        }
        paths = write_outputs(out, source, result, extra)
    except KeyboardInterrupt:
        bar.close()
        print("slidelens explain: interrupted", file=err)
        return EXIT_INTERRUPTED
    except ExplainCancelled:
        return EXIT_INTERRUPTED
    except (ExplainError, MissingMppError) as exc:  # what was asked cannot be done
        bar.close()
        print(f"slidelens explain: {args.slide}: {exc}", file=err)
        return EXIT_USAGE
    except (SlideError, ValueError, OSError) as exc:
        bar.close()
        print(f"slidelens explain: {args.slide}: {exc}", file=err)
        return EXIT_FAILED
    finally:
        source.close()
    provenance = result.provenance
    print(
        f"{paths['png']}: {provenance['method_label']} of class {result.class_name!r} "
        f"(p={result.scores[result.class_name]:.3f}) on "
        f"{patch_count(provenance['geometry']['patches'])} "
        f"in {provenance['time_s']:.2f} s; also {paths['json'].name}, "
        f"{paths['npy'].name}"
    )
    return EXIT_OK

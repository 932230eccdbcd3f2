"""``slidelens export SLIDE --out fig.png|fig.tiff``: a figure of a slide region, headless.

The figure is composed by the same code as the viewer's "Export region" (see
:mod:`viewer.export.figure`): the slide at the chosen pixel size, the model result that
``slidelens infer --out DIR`` wrote (``--results DIR``) as a heatmap, annotations from
a GeoJSON file, ground truth outlined, a scale bar, legends and a caption; beside the
figure goes ``<figure>.json`` with its provenance (with the grade and class areas of the
results' ``<stem>.slide.json``, under the layer's ``slide_report``).  No Qt is imported
(it runs on a server).  The figure's size is printed before anything is written; one of
more than :data:`~viewer.export.compositor.LARGE_FIGURE_PIXELS` is refused unless
``--force``.
Exit codes (:mod:`inference.cli.exit_codes`): 0 written, 1 the slide or another input
file could not be read or the figure not written, 2 bad arguments (a region outside the
slide, a figure too large, an unknown class or file type).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inference.cli.args import fraction, parse_region, positive_float
from inference.cli.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from inference.core.geometry import Rect
    from inference.slides import SlideSource
    from viewer.annotations import Annotation
    from viewer.layers.base import Layer
    from viewer.layers.heatmap import HeatmapLayer


class _UsageError(Exception):
    """Arguments that do not fit the slide (exit code 2)."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``export`` (cheap: everything heavy is imported when it runs)."""
    parser = subparsers.add_parser(
        "export",
        help="write a figure of a slide region with overlays, scale bar, legend, provenance",
        description=(
            "Compose a region of SLIDE at a chosen pixel size with a model's heatmap, "
            "annotations and ground truth, a scale bar, legends and a caption, and write it "
            "as PNG or tiled TIFF (streamed: any size up to 100,000 px per side) plus "
            "<figure>.json with the provenance."
        ),
    )
    parser.add_argument("slide", type=Path, metavar="SLIDE", help="slide or image file")
    parser.add_argument("--out", required=True, type=Path, help="figure file: .png, .tif or .tiff")
    parser.add_argument(
        "--region",
        type=parse_region,
        help="level-0 rectangle X,Y,W,H (default: the whole slide)",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--mpp",
        type=positive_float,
        help="microns per figure pixel (default: the slide's own, i.e. full resolution)",
    )
    size.add_argument(
        "--downsample",
        type=positive_float,
        help="level-0 pixels per figure pixel (for slides that do not state their mpp)",
    )
    parser.add_argument(
        "--results", type=Path, help="folder written by 'slidelens infer --out DIR'"
    )
    parser.add_argument(
        "--class",
        dest="class_name",
        help="what of the results to show: a class (default: the last class, or the "
        "class map for three classes or more); 'argmax': every class in its colour, the "
        "class map; 'top probability' or '1 - entropy': how confident the model is",
    )
    parser.add_argument("--colormap", default="viridis", help="heatmap colormap")
    parser.add_argument(
        "--opacity", type=fraction, default=0.5, help="heatmap opacity 0-1 (default 0.5)"
    )
    parser.add_argument(
        "--threshold", type=float, help="hide heatmap values below this probability"
    )
    parser.add_argument(
        "--smooth", action="store_true", help="blend heatmap cells instead of showing patches"
    )
    parser.add_argument(
        "--no-tissue-clip",
        action="store_true",
        help="show a segmentation map on the glass too (by default it is clipped to the "
        "slide's tissue, as in the viewer; it is always clipped to the slide)",
    )
    parser.add_argument("--annotations", type=Path, help="annotations as GeoJSON (QuPath)")
    parser.add_argument(
        "--truth", type=Path, help="ground truth: a mask image or a GeoJSON file (outlined)"
    )
    parser.add_argument("--no-scale-bar", action="store_true", help="leave out the scale bar")
    parser.add_argument("--no-legend", action="store_true", help="leave out the legends")
    parser.add_argument("--caption", default="", help="caption text (top-left)")
    display = parser.add_argument_group(
        "display adjustment of the slide's pixels (as the viewer's View > Display)"
    )
    display.add_argument("--brightness", type=float, default=0.0, help="added, -1 to 1 (default 0)")
    display.add_argument(
        "--contrast", type=float, default=1.0, help="factor about mid grey, 0.25 to 4 (1)"
    )
    display.add_argument(
        "--gamma", type=float, default=1.0, help="exponent, 0.2 to 5 (1; below 1 lightens)"
    )
    parser.add_argument(
        "--overlay-scale",
        type=positive_float,
        help="size of scale bar, legend, caption and annotation lines (default: 1 per "
        "1000 px of the figure's shorter side, from 1 to 16)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="write a figure larger than 100 megapixels (refused otherwise)",
    )
    parser.add_argument("--quiet", action="store_true", help="no size or progress on stderr")
    parser.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    """The ``export`` handler: returns the exit code; errors go to stderr in one line."""
    from inference.slides import SlideError, open_slide
    from viewer.export.scene import ExportError

    try:
        source = open_slide(args.slide)
    except SlideError as exc:
        print(f"slidelens export: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        return _export(args, source)
    except _UsageError as exc:
        print(f"slidelens export: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ExportError, SlideError, ValueError, FileNotFoundError) as exc:
        print(f"slidelens export: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        source.close()


def _export(args: argparse.Namespace, source: SlideSource) -> int:
    from inference.core.geometry import Rect
    from viewer.export.compositor import check_output_size, figure_size_text, is_large_figure
    from viewer.export.figure import figure_format, region_compositor, write_figure
    from viewer.export.scene import ExportError, FigureOptions, FigureSpec
    from viewer.tiles.adjustment import DisplayAdjustment

    info = source.info
    if args.mpp is not None and not info.mpp:
        raise _UsageError(
            f"{args.slide.name} does not state its pixel size, so --mpp cannot be honoured; "
            f"use --downsample (level-0 pixels per figure pixel)"
        )
    l0_w, l0_h = info.dimensions
    region = args.region or Rect(0, 0, l0_w, l0_h)
    try:  # what the command line asks for, checked before any work
        adjustment = DisplayAdjustment(args.brightness, args.contrast, args.gamma)
    except ValueError as exc:
        raise _UsageError(str(exc)) from exc
    try:
        figure_format(args.out)
        probe = FigureSpec.for_region(
            region, mpp=info.mpp, um_per_px=args.mpp, l0_per_px=args.downsample
        )
        check_output_size(probe.width, probe.height)  # before sizing overlays for it
        if probe.l0_covered.intersect(Rect(0, 0, l0_w, l0_h)).is_empty():
            raise ExportError(
                f"the region {region.x:g},{region.y:g},{region.w:g},{region.h:g} lies "
                f"outside the slide ({l0_w} x {l0_h} level-0 px)"
            )
    except ExportError as exc:
        raise _UsageError(str(exc)) from exc
    size = figure_size_text(probe.width, probe.height)
    if is_large_figure(probe.width, probe.height) and not args.force:
        raise _UsageError(
            f"{args.out.name} would be {size}, more than a figure needs; give --mpp "
            f"(coarser pixels) or a smaller --region, or --force to write it anyway"
        )
    if not args.quiet:
        print(f"slidelens export: {args.out.name} will be {size}", file=sys.stderr)
    layers = _layers(args, source)
    annotations = _annotations(args.annotations, args.quiet, info.l0_bounds)
    overlay_scale = args.overlay_scale or min(16.0, max(1.0, min(probe.width, probe.height) / 1000))
    options = FigureOptions(
        scale_bar=not args.no_scale_bar,
        legend=not args.no_legend,
        caption=args.caption,
        overlay_scale=overlay_scale,
    )
    compositor = region_compositor(
        source,
        layers,
        region,
        um_per_px=args.mpp,
        l0_per_px=args.downsample,
        annotations=annotations,
        options=options,
        adjustment=adjustment,
    )
    progress = None if args.quiet or not sys.stderr.isatty() else _progress_printer()
    result = write_figure(compositor, args.out, progress=progress)
    if progress is not None:
        print(file=sys.stderr)
    um = f"{result.um_per_px:.4g} µm/px" if result.um_per_px else "no physical size"
    print(
        f"wrote {result.path} ({result.width} x {result.height} px, {um}, "
        f"{result.l0_per_px:.4g} level-0 px/px) in {result.seconds:.1f} s; "
        f"provenance in {result.sidecar}"
    )
    return EXIT_OK


def _progress_printer() -> Any:
    started = time.perf_counter()

    def show(done: int, total: int) -> None:
        elapsed = time.perf_counter() - started
        print(
            f"\rexport: {100 * done / total:5.1f}% ({done}/{total} tiles, {elapsed:.0f} s)",
            end="",
            file=sys.stderr,
            flush=True,
        )

    return show


def _layers(args: argparse.Namespace, source: SlideSource) -> list[Layer]:
    layers: list[Layer] = []
    if args.results is not None:
        layers.append(_heatmap_layer(args, source))
    elif args.class_name is not None:
        raise _UsageError("--class chooses a class of --results; give --results DIR too")
    if args.truth is not None:
        classes = getattr(layers[0], "class_names", None) if layers else None
        layers.append(_truth_layer(args.truth, source, classes))
    return layers


def _heatmap_layer(args: argparse.Namespace, source: SlideSource) -> Layer:
    from inference.results.exports import find_result, read_result_npz
    from viewer.grade_provenance import PROVENANCE_KEY
    from viewer.layers.colormaps import CONTINUOUS
    from viewer.layers.heatmap import ARGMAX, CONFIDENCE_MEASURES, HeatmapLayer, shown_index
    from viewer.result_layers import MULTI_CLASS

    results_dir: Path = args.results
    if not results_dir.is_dir():
        raise FileNotFoundError(f"{results_dir}: no such results folder")
    npz = find_result(results_dir, args.slide)
    result = read_result_npz(npz)
    run = _run_document(npz)
    info = source.info
    run_slide = run.get("slide", {}) if isinstance(run.get("slide"), dict) else {}
    made_for = run_slide.get("source_id")
    if made_for and made_for != info.source_id:
        raise ValueError(
            f"{npz.name}: these results were computed for another slide (content id "
            f"{made_for}, this slide is {info.source_id}); rerun slidelens infer on "
            f"{args.slide.name}"
        )
    class_index: int | None = None
    if args.class_name is not None:
        wanted = args.class_name.strip().lower()
        names = tuple(n.lower() for n in result.class_names)
        try:
            class_index = shown_index(wanted, names)
            if class_index < 0 and len(names) < 2:
                raise ValueError("a one-output result has no class map or confidence")
        except ValueError:
            choices = [*result.class_names, "argmax", *CONFIDENCE_MEASURES.values()]
            raise _UsageError(
                f"--class {args.class_name!r} is not something {npz.name} can show; choose "
                f"one of {', '.join(choices)}"
            ) from None
    elif len(result.class_names) >= MULTI_CLASS:
        class_index = ARGMAX  # the class map, as the window shows such a result first
    if args.colormap not in CONTINUOUS:
        raise _UsageError(
            f"--colormap {args.colormap!r} is unknown; choose one of {', '.join(CONTINUOUS)}"
        )
    model = run.get("model", {}) if isinstance(run.get("model"), dict) else {}
    provenance: dict[str, Any] = {
        "kind": "results",
        "results_file": str(npz.resolve()),
        "run_file": str(npz.with_name(npz.name.replace(".result.npz", ".run.json")).resolve())
        if run
        else None,
        "model": model.get("name"),
        "model_sha256": model.get("sha256"),
        "model_folder": model.get("folder"),
        "parameters": run.get("parameters"),
        "created": run.get("created"),
        "source_id": made_for,
    }
    summary = _grade_summary(npz, model.get("sha256"))
    if summary is not None:
        provenance[PROVENANCE_KEY] = summary
    name = f"{model.get('name') or 'model'} results"
    layer = HeatmapLayer(
        name,
        result,
        class_index=class_index,
        colormap=args.colormap,
        opacity=args.opacity,
        provenance=provenance,
    )
    if args.threshold is not None:
        layer.threshold = args.threshold
    if args.smooth:
        layer.interpolation = "smooth"
    _dress(layer, source, clip_to_tissue=not args.no_tissue_clip)
    return layer


def _dress(layer: HeatmapLayer, source: SlideSource, *, clip_to_tissue: bool) -> None:
    """As the viewer does: the model's domain warning (its card against this slide) and,
    for a segmentation map, the clip to the slide and (unless turned off) its tissue."""
    from inference.engine.tissue import tissue_mask
    from viewer.result_layers import dress_layer, layer_clip, restored_domain

    info = source.info
    domain = restored_domain(layer.provenance, info.properties)
    if domain is not None:
        layer.provenance["domain"] = domain
    tissue = tissue_mask(source) if layer.clips and clip_to_tissue else None
    layer.clip_to_tissue = clip_to_tissue
    dress_layer(layer, layer_clip(info.dimensions, tissue))


def _run_document(npz: Path) -> dict[str, Any]:
    """The ``<stem>.run.json`` written beside a result, or ``{}`` when absent/unreadable."""
    run_path = npz.with_name(npz.name.replace(".result.npz", ".run.json"))
    try:
        doc = json.loads(run_path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _grade_summary(npz: Path, model_sha256: str | None) -> dict[str, Any] | None:
    """The grade and class areas of the ``<stem>.slide.json`` written beside a result, as
    the viewer puts them in a layer's provenance; ``None`` when there is none, or (with a
    warning line naming the file) when it cannot be read or another model made it."""
    from inference.results.slide_report import read_slide_report, slide_report_path
    from viewer.grade_provenance import grade_summary

    path = slide_report_path(npz.parent, npz.name.removesuffix(".result.npz"))
    if not path.is_file():
        return None
    try:
        report = read_slide_report(path)
    except ValueError as exc:
        print(
            f"slidelens export: warning: {exc}; the figure carries no grade",
            file=sys.stderr,
        )
        return None
    made_by = report.get("model")
    made_by = made_by if isinstance(made_by, dict) else {}
    if model_sha256 and made_by.get("sha256") and made_by["sha256"] != model_sha256:
        print(
            f"slidelens export: warning: {path.name} was made by another model than "
            f"{npz.name} ({made_by.get('name')}); the figure carries no grade",
            file=sys.stderr,
        )
        return None
    return grade_summary(report)


def _truth_layer(
    path: Path, source: SlideSource, model_classes: tuple[str, ...] | None = None
) -> Layer:
    from inference.evaluation.truth import load_truth
    from viewer.truth_layers import truth_layer

    info = source.info  # GeoJSON truth counts from the bounds' corner, as QuPath does
    truth = load_truth(path, info.dimensions, l0_origin=info.l0_bounds_origin)
    return truth_layer(truth, path, model_classes)


def _annotations(path: Path | None, quiet: bool, l0_bounds: Rect) -> list[Annotation]:
    """The annotations of a GeoJSON file, counted from the slide's bounds as QuPath
    counts them (see :mod:`viewer.annotations.geojson`)."""
    if path is None:
        return []
    from viewer.annotations import AnnotationFileError, import_geojson

    try:
        imported = import_geojson(path, l0_origin=(l0_bounds.x, l0_bounds.y))
    except AnnotationFileError as exc:
        raise ValueError(str(exc)) from exc
    if imported.skipped and not quiet:
        print(f"{path.name}: {imported.summary()}", file=sys.stderr)
    return list(imported.annotations)

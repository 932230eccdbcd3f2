"""Figures: compose a view or a region and write it as PNG or TIFF with a JSON sidecar.

This is what the GUI ("Export view", "Export region", "Copy view to clipboard") and the
``slidelens export`` command call.  The split between threads:

* on the thread that owns the layer models (the GUI thread): :func:`view_compositor`
  or :func:`region_compositor` snapshot the layers and annotations (cheap);
* anywhere (a worker thread): :func:`write_figure` composes tile by tile and streams the
  image to disk, reporting ``progress(done, total)`` and honouring ``cancelled()``.

Files are written under a temporary name in the target folder and renamed into place
when complete, so a failure (disk full, no permission, cancel) leaves no partial file;
the error names the file and says what to do.  Beside ``fig.png`` goes
``fig.png.json``: the slide, region, pixel size, layers with their settings and
provenance (model hashes included), annotations, overlays, versions and time.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import platform
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from inference.core.atomic_io import atomic_write_text
from inference.core.geometry import Rect, ViewTransform
from inference.slides import SlideSource
from viewer.annotations.model import Annotation
from viewer.export.compositor import Compositor
from viewer.export.corners import DEFAULT_LEGEND_CORNER, Corner
from viewer.export.png_stream import PngStreamWriter, pixels_per_metre
from viewer.export.scene import (
    ExportCancelled,
    ExportError,
    FigureOptions,
    FigureScene,
    FigureSpec,
)
from viewer.layers.base import Layer
from viewer.tiles.adjustment import NEUTRAL, DisplayAdjustment

#: Output formats by file suffix.
FORMATS: Mapping[str, str] = {".png": "png", ".tif": "tiff", ".tiff": "tiff"}
#: Version of the sidecar's layout.
SIDECAR_VERSION = 1
#: Files larger than this (uncompressed) are written as BigTIFF.
_BIGTIFF_BYTES = 2**32 - 2**28

Progress = Callable[[int, int], None]
Cancelled = Callable[[], bool]


# -- making compositors ----------------------------------------------------------------


def view_compositor(
    source: SlideSource,
    layers: Iterable[Layer],
    transform: ViewTransform,
    scr_size: tuple[int, int],
    *,
    annotations: Iterable[Annotation] = (),
    show_scale_bar: bool = True,
    show_legend: bool = True,
    caption: str = "",
    pixel_ratio: float = 1.0,
    workers: int = 2,
    typed_mpp: float | None = None,
    legend_corner: Corner = DEFAULT_LEGEND_CORNER,
    adjustment: DisplayAdjustment = NEUTRAL,
) -> Compositor:
    """What a canvas of ``scr_size`` shows under ``transform``, ready to compose.

    Call on the thread that owns ``layers`` (it snapshots them).  ``pixel_ratio``
    renders the same view with that many output pixels per screen pixel (overlays grow
    with it), e.g. the screen's device pixel ratio, or 2 for a sharper export.
    ``typed_mpp``: the pixel size the user typed for a slide that states none;
    ``legend_corner``: the canvas's; ``adjustment``: the canvas's display adjustment.
    """
    options = FigureOptions(
        scale_bar=show_scale_bar,
        legend=show_legend,
        legend_corner=legend_corner,
        caption=caption,
        overlay_scale=pixel_ratio,
        annotation_legend=False,
    )
    spec = FigureSpec.for_view(transform, scr_size, pixel_ratio=pixel_ratio, options=options)
    scene = FigureScene.capture(
        source, layers, annotations, typed_mpp=typed_mpp, adjustment=adjustment
    )
    return Compositor(scene, spec, workers=workers)


def compose_view(
    source: SlideSource,
    layers: Iterable[Layer],
    transform: ViewTransform,
    scr_size: tuple[int, int],
    *,
    annotations: Iterable[Annotation] = (),
    show_scale_bar: bool = True,
    show_legend: bool = True,
    pixel_ratio: float = 1.0,
    adjustment: DisplayAdjustment = NEUTRAL,
) -> np.ndarray:
    """The view as ``(h, w, 3)`` uint8 RGB (``h, w`` = ``scr_size`` times
    ``pixel_ratio``), e.g. for the clipboard.  Runs on the calling thread."""
    return view_compositor(
        source,
        layers,
        transform,
        scr_size,
        annotations=annotations,
        show_scale_bar=show_scale_bar,
        show_legend=show_legend,
        pixel_ratio=pixel_ratio,
        adjustment=adjustment,
    ).compose()


def region_compositor(
    source: SlideSource,
    layers: Iterable[Layer],
    l0_region: Rect,
    *,
    um_per_px: float | None = None,
    l0_per_px: float | None = None,
    annotations: Iterable[Annotation] = (),
    options: FigureOptions | None = None,
    workers: int = 2,
    typed_mpp: float | None = None,
    adjustment: DisplayAdjustment = NEUTRAL,
) -> Compositor:
    """A level-0 region at ``um_per_px`` (needs the slide's mpp, or ``typed_mpp``, one
    the user typed for a slide that states none) or ``l0_per_px`` (neither: full
    resolution), ready to compose, the slide's pixels under ``adjustment`` (brightness,
    contrast, gamma).  Call on the thread that owns ``layers``.
    :class:`ExportError` for an absurd size or a region off the slide."""
    spec = FigureSpec.for_region(
        l0_region,
        mpp=source.info.mpp or typed_mpp,
        um_per_px=um_per_px,
        l0_per_px=l0_per_px,
        options=options,
    )
    scene = FigureScene.capture(
        source, layers, annotations, typed_mpp=typed_mpp, adjustment=adjustment
    )
    return Compositor(scene, spec, workers=workers)


# -- writing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportResult:
    """What :func:`write_figure` wrote."""

    path: Path
    sidecar: Path | None
    format: str
    width: int
    height: int
    l0_per_px: float
    um_per_px: float | None
    seconds: float


def figure_format(path: Path, fmt: str | None = None) -> str:
    """``"png"`` or ``"tiff"``, from ``fmt`` or the file's suffix; :class:`ExportError`
    for anything else."""
    if fmt is not None:
        if fmt.lower() in ("png", "tiff", "tif"):
            return "png" if fmt.lower() == "png" else "tiff"
        raise ExportError(f"unknown figure format {fmt!r}; use png or tiff")
    found = FORMATS.get(Path(path).suffix.lower())
    if found is None:
        raise ExportError(
            f"{Path(path).name}: unknown figure type {Path(path).suffix or '(no suffix)'}; "
            f"name it .png, .tif or .tiff"
        )
    return found


def sidecar_path(path: Path) -> Path:
    """Where the provenance of figure ``path`` goes: ``fig.png`` -> ``fig.png.json``."""
    return Path(path).with_name(Path(path).name + ".json")


def write_figure(
    compositor: Compositor,
    path: Path,
    *,
    fmt: str | None = None,
    sidecar: bool = True,
    progress: Progress | None = None,
    cancelled: Cancelled | None = None,
    png_level: int = 6,
    tiff_compression: str = "zlib",
) -> ExportResult:
    """Compose ``compositor``'s figure tile by tile and write it to ``path`` (PNG
    streamed band by band, or tiled TIFF), then its sidecar.  Any thread.

    Raises :class:`ExportError` (naming the file) when it cannot be written and
    :class:`ExportCancelled` when ``cancelled()`` turns true; either way no partial
    file remains.  ``progress(done, total)`` counts tiles.
    """
    path = Path(path).expanduser()
    kind = figure_format(path, fmt)
    if path.is_dir():
        raise ExportError(f"{path}: is a folder; give a file name ending in .png or .tiff")
    started = time.perf_counter()
    spec = compositor.spec
    um_per_px = spec.um_per_px(compositor.scene.mpp)
    description = _short_description(compositor, um_per_px)

    def write(tmp: Path) -> None:
        if kind == "png":
            _write_png(compositor, tmp, um_per_px, description, png_level, progress, cancelled)
        else:
            _write_tiff(
                compositor, tmp, um_per_px, description, tiff_compression, progress, cancelled
            )

    _atomically(path, write)
    seconds = time.perf_counter() - started
    result = ExportResult(
        path, None, kind, compositor.width, compositor.height, spec.l0_per_px, um_per_px, seconds
    )
    if not sidecar:
        return result
    side = sidecar_path(path)
    doc = sidecar_document(compositor, result)
    try:
        atomic_write_text(side, _dumps(doc))
    except OSError as exc:
        path.unlink(missing_ok=True)  # a figure without its provenance is not delivered
        raise ExportError(_os_error_message(side, exc)) from exc
    return replace(result, sidecar=side)


def _write_png(
    compositor: Compositor,
    tmp: Path,
    um_per_px: float | None,
    description: str,
    level: int,
    progress: Progress | None,
    cancelled: Cancelled | None,
) -> None:
    ppm = None if um_per_px is None else pixels_per_metre(um_per_px)
    text = {"Software": "SlideLens", "Description": description}
    with open(tmp, "xb") as fh:
        writer = PngStreamWriter(
            fh, compositor.width, compositor.height, pixels_per_metre=ppm, text=text, level=level
        )
        for _, band in compositor.iter_bands(cancelled=cancelled, progress=progress):
            writer.write_rows(band)
        writer.close()
        fh.flush()
        os.fsync(fh.fileno())


def _write_tiff(
    compositor: Compositor,
    tmp: Path,
    um_per_px: float | None,
    description: str,
    compression: str,
    progress: Progress | None,
    cancelled: Cancelled | None,
) -> None:
    import tifffile

    tile = compositor.tile_px  # a multiple of 16, as TIFF tiles must be
    tiles = compositor.tiles(tile, tile)
    pixels = (
        data for _, data in compositor.iter_tiles(tiles, cancelled=cancelled, progress=progress)
    )
    options: dict[str, Any] = {}
    if um_per_px is not None:
        per_cm = 1e4 / um_per_px
        options = {"resolution": (per_cm, per_cm), "resolutionunit": "CENTIMETER"}
    big = compositor.width * compositor.height * 3 > _BIGTIFF_BYTES
    with tifffile.TiffWriter(tmp, bigtiff=big) as tif:
        tif.write(
            pixels,
            shape=(compositor.height, compositor.width, 3),
            dtype=np.uint8,
            tile=(tile, tile),
            photometric="rgb",
            compression=compression,
            predictor=compression in ("zlib", "lzw", "zstd"),
            description=description,
            software="SlideLens",
            metadata=None,
            maxworkers=1,
            **options,
        )
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())


def _atomically(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` into a temporary sibling of ``path``, then rename it into place.

    OS errors become :class:`ExportError` naming ``path``; nothing is left behind on
    any failure (or cancel).
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except ExportError:
        raise
    except OSError as exc:
        raise ExportError(_os_error_message(path, exc)) from exc
    finally:
        with contextlib.suppress(OSError):  # e.g. no folder: then no temporary either
            tmp.unlink(missing_ok=True)


def _os_error_message(path: Path, exc: OSError) -> str:
    code = exc.errno
    if code in (errno.ENOTDIR, errno.EEXIST) and not path.parent.is_dir():
        return f"{path}: {path.parent} is not a folder. Choose another place for the figure."
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return (
            f"{path}: the disk is full (no space left while writing the figure). "
            f"Free some space or choose another disk; nothing was written."
        )
    if code in (errno.EACCES, errno.EPERM):
        return f"{path}: permission denied. Choose a folder you can write to."
    if code == errno.EROFS:
        return f"{path}: the disk is read-only. Choose another folder."
    if code == errno.ENAMETOOLONG:
        return f"{path}: the file name is too long. Choose a shorter one."
    return f"{path}: could not write the figure ({exc.strerror or exc})."


# -- provenance --------------------------------------------------------------------------


def versions() -> dict[str, str]:
    """Versions of what made the figure (no torch: exports never load it)."""
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in (
        "slidelens",
        "numpy",
        "opencv-python-headless",
        "pillow",
        "tifffile",
        "openslide-python",
        "openslide-bin",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _short_description(compositor: Compositor, um_per_px: float | None) -> str:
    """One line of ASCII JSON embedded in the image file itself."""
    spec = compositor.spec
    info = compositor.scene.source.info
    doc = {
        "slidelens_figure": SIDECAR_VERSION,
        "slide": info.path.name,
        "source_id": info.source_id,
        "l0_region": _rect_list(spec.l0_covered),
        "l0_per_px": spec.l0_per_px,
        "um_per_px": um_per_px,
    }
    return json.dumps(doc, ensure_ascii=True)


def sidecar_document(compositor: Compositor, result: ExportResult) -> dict[str, Any]:
    """The provenance of a written figure (what goes into ``fig.png.json``)."""
    spec = compositor.spec
    scene = compositor.scene
    info = scene.source.info
    shown = compositor.annotations
    bar = compositor.scale_bar
    return {
        "slidelens_figure": SIDECAR_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "figure": {
            "path": str(result.path.resolve()),
            "format": result.format,
            "width": result.width,
            "height": result.height,
            "um_per_px": result.um_per_px,
            "l0_per_px": spec.l0_per_px,
            "seconds": round(result.seconds, 3),
        },
        "slide": {
            "path": str(info.path.resolve()),
            "source_id": info.source_id,
            "vendor": info.vendor,
            "dimensions": list(info.dimensions),
            "mpp": scene.mpp,
            "mpp_source": scene.mpp_source,
            "level_read": compositor.level,
            "level_downsample": info.level_downsamples[compositor.level],
            # brightness, contrast and gamma of the slide's pixels (never of the layers)
            "display_adjustment": (
                None if scene.adjustment.is_identity else scene.adjustment.to_dict()
            ),
        },
        "region": {
            "requested_l0": _rect_list(spec.l0_region),
            "l0": _rect_list(spec.l0_covered),
        },
        "layers": [
            {
                "name": r.name,
                "kind": r.kind,
                "drawn": r.drawn,
                "settings": r.settings,
                "provenance": r.provenance,
            }
            for r in scene.records
        ],
        "annotations": {
            "given": len(scene.annotations),
            "drawn": len(shown),
            "classes": dict(Counter(a.class_name or "Unclassified" for a in shown)),
            "kinds": dict(Counter(str(a.kind) for a in shown)),
        },
        "overlays": {
            "scale_bar": None
            if bar is None
            else {"length": bar.length, "unit": bar.unit, "label": bar.label, "px": bar.bar_px},
            "legends": [legend.title for legend in compositor.legends],
            # e.g. a model not for diagnosis, or run on a slide outside its domain
            "warnings": [{"layer": name, "warning": text} for name, text in scene.warnings],
            "caption": spec.options.caption or None,
            "overlay_scale": spec.options.overlay_scale,
        },
        "versions": versions(),
    }


def _rect_list(rect: Rect) -> list[float]:
    return [rect.x, rect.y, rect.w, rect.h]


def _clean(value: Any) -> Any:
    """``value`` made JSON-safe: NaN/inf -> null, numpy -> Python, paths -> strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist()) if value.size <= 64 else f"<array {value.shape}>"
    if isinstance(value, np.generic):
        return _clean(value.item())
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _dumps(doc: Mapping[str, Any]) -> str:
    return json.dumps(_clean(doc), indent=2, ensure_ascii=False) + "\n"


__all__ = [
    "FORMATS",
    "ExportCancelled",
    "ExportError",
    "ExportResult",
    "compose_view",
    "figure_format",
    "region_compositor",
    "sidecar_document",
    "sidecar_path",
    "view_compositor",
    "write_figure",
]

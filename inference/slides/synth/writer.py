"""``write_synthetic_slide``: a synthetic H&E-like pyramidal TIFF with its ground truth.

The slide is a tiled JPEG TIFF whose levels are consecutive pages (OpenSlide reads it as
``generic-tiff``) with resolution tags that state the pixel size.  Level 0 is rendered
tile by tile on worker threads and streamed to the file; each coarser level (4x
smaller) is made from the one above it as rows arrive and kept only as JPEG bytes, so
memory stays small for a 100,000 x 100,000 slide.  Beside ``OUT.tiff`` go
``OUT.mask.png`` (one pixel per ``l0_per_px`` level-0 pixels, stated in the PNG's text)
and ``OUT.geojson`` (polygons in level-0 pixels, QuPath-style).

Two kinds of slide (:attr:`SynthParams.kind`):

* ``"tumour"`` (the default): tissue islands with tumour regions
  (:mod:`inference.slides.synth.layout`, :mod:`inference.slides.synth.render`); the mask
  is 255 = tumour, 0 = not, the GeoJSON holds "Tumour" polygons.
* ``"prostate"``: needle biopsy cores with stroma, benign glands and Gleason patterns 3,
  4 and 5 (:mod:`inference.slides.synth.prostate_layout`,
  :mod:`inference.slides.synth.prostate_render`); the mask is a label image (PANDA's
  Radboud values 0-5), the GeoJSON holds one polygon per region named by its class
  ("Stroma", "Benign", "Gleason 3", ...), and ``OUT.truth.json`` adds the per-class and
  per-pattern areas, the Gleason score and the ISUP grade group (:func:`prostate_truth`).
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from inference.slides.base import MASK_SCALE_KEY
from inference.slides.synth.layout import SynthLayout, make_layout
from inference.slides.synth.prostate_layout import (
    PATTERN_LABELS,
    PROSTATE_CLASSES,
    PROSTATE_DISPLAY_NAMES,
    ProstateLayout,
    make_prostate_layout,
)
from inference.slides.synth.prostate_render import ProstateRenderer
from inference.slides.synth.render import GLASS_RGB, TileRenderer

#: Coarser levels are 4x smaller, down to a level whose longer side fits in this.
_COARSEST_SIDE = 512
_FACTOR = 4
TUMOUR_CLASS = {"name": "Tumour", "color": [200, 30, 40]}
#: The TIFF Software tag of every synthetic slide (OpenSlide reports it as
#: ``tiff.Software``); the demo models' cards recognise their slides by it.
SYNTH_SOFTWARE = "SlideLens synth"
#: The kinds of synthetic slide.
KINDS = ("tumour", "prostate")
#: Colours of the prostate classes in the GeoJSON (by label).
_PROSTATE_COLOURS = {
    1: [150, 200, 150],
    2: [0, 114, 178],
    3: [240, 228, 66],
    4: [230, 159, 0],
    5: [213, 94, 0],
}

Progress = Callable[[int, int], None]


class _Layout(Protocol):
    def has_tissue(self, l0_x: int, l0_y: int, width: int, height: int) -> bool: ...


class _Renderer(Protocol):
    @property
    def layout(self) -> _Layout: ...

    def render(self, l0_x: int, l0_y: int, width: int, height: int) -> np.ndarray: ...


@dataclass(frozen=True)
class SynthParams:
    """What to make: level-0 size, seed (same seed and size, same slide), pixel size and
    the kind of slide (:data:`KINDS`).  ``tumour_scale`` (tumour slides): the size of
    the tumour regions, 1 as drawn, smaller for small tumours, 0 for none."""

    width: int
    height: int
    seed: int = 0
    mpp: float = 0.5
    tile: int = 256
    jpeg_quality: int = 85
    kind: str = "tumour"
    tumour_scale: float = 1.0

    def __post_init__(self) -> None:
        if not 64 <= self.width <= 2_000_000 or not 64 <= self.height <= 2_000_000:
            raise ValueError(
                f"width and height must be 64 .. 2,000,000 px; got {self.width} x {self.height}"
            )
        if not 0.05 <= self.mpp <= 50:
            raise ValueError(f"mpp must be 0.05 .. 50 um/px; got {self.mpp}")
        if self.tile % 16 or not 64 <= self.tile <= 2048:
            raise ValueError(f"tile must be a multiple of 16 in 64 .. 2048; got {self.tile}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be 1 .. 100; got {self.jpeg_quality}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        if not 0.0 <= self.tumour_scale <= 1.0:
            raise ValueError(f"tumour_scale must be 0 .. 1; got {self.tumour_scale}")

    @classmethod
    def demo(cls) -> SynthParams:
        """The demo slide: 16 x 12 mm of tissue scanned at 0.5 um/px (20x)."""
        return cls(width=32768, height=24576, seed=2026, mpp=0.5)

    @classmethod
    def prostate(cls, seed: int = 0, mpp: float = 0.5) -> SynthParams:
        """A prostate biopsy slide of the default size: 6 x 2 mm (two needle cores)."""
        width, height = round(PROSTATE_SIZE_UM[0] / mpp), round(PROSTATE_SIZE_UM[1] / mpp)
        return cls(width=width, height=height, seed=seed, mpp=mpp, kind="prostate")


#: The default size of a prostate slide, in micrometres.
PROSTATE_SIZE_UM = (6144.0, 2048.0)


@dataclass(frozen=True)
class SynthOutput:
    """The files written and a few facts about the slide.  ``tumour_fraction_of_tissue``
    counts every Gleason pattern on a prostate slide; ``truth`` is what
    ``OUT.truth.json`` holds (prostate slides; ``None`` otherwise)."""

    slide: Path
    mask: Path
    geojson: Path
    level_dimensions: tuple[tuple[int, int], ...]
    mask_l0_per_px: int
    tissue_fraction: float
    tumour_fraction_of_tissue: float
    truth_json: Path | None = None
    truth: dict[str, Any] | None = None


def truth_paths(slide: Path) -> tuple[Path, Path]:
    """Where the ground truth of a synthetic slide lives: ``(OUT.mask.png, OUT.geojson)``."""
    stem = slide.with_suffix("")
    return stem.with_name(stem.name + ".mask.png"), stem.with_name(stem.name + ".geojson")


def truth_json_path(slide: Path) -> Path:
    """Where the slide-level truth of a synthetic prostate slide lives: ``OUT.truth.json``."""
    stem = Path(slide).with_suffix("")
    return stem.with_name(stem.name + ".truth.json")


def pyramid_dimensions(width: int, height: int) -> tuple[tuple[int, int], ...]:
    dims = [(width, height)]
    while max(dims[-1]) > _COARSEST_SIDE:
        w, h = dims[-1]
        dims.append((math.ceil(w / _FACTOR), math.ceil(h / _FACTOR)))
    return tuple(dims)


def write_synthetic_slide(
    path: str | Path,
    params: SynthParams,
    progress: Progress | None = None,
    workers: int | None = None,
) -> SynthOutput:
    """Write the slide and its ground truth; return what was written.

    Deterministic: the same ``params`` give the same pixels.  The files appear
    atomically (written under temporary names, then renamed), so an interrupted run
    never leaves a half-written slide behind.  ``progress(done, total)`` is called
    with level-0 tiles done.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if params.kind == "prostate":
        return _write_prostate_slide(path, params, progress, workers)
    layout = make_layout(params.width, params.height, params.seed, params.tumour_scale)
    renderer = TileRenderer(layout, params.seed, params.mpp)
    workers = workers or max(1, min(8, os.cpu_count() or 1))
    mask_path, geojson_path = truth_paths(path)

    tmp = path.with_name(f".{path.name}.partial")
    try:
        dims = _write_pyramid(tmp, params, renderer, workers, progress)
        _write_mask(mask_path, layout)
        _write_geojson(geojson_path, layout)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    tissue = layout.tissue_mask
    return SynthOutput(
        slide=path,
        mask=mask_path,
        geojson=geojson_path,
        level_dimensions=dims,
        mask_l0_per_px=layout.l0_per_px,
        tissue_fraction=float(tissue.mean()),
        tumour_fraction_of_tissue=float(layout.truth_mask.sum() / max(1, tissue.sum())),
    )


# -- pyramid ----------------------------------------------------------------------------


def _encode_jpeg(tile: np.ndarray, quality: int) -> bytes:
    """One tile as the TIFF JPEG bytes tifffile would write (YCbCr, 2x2 subsampling)."""
    import imagecodecs

    data = imagecodecs.jpeg8_encode(
        np.ascontiguousarray(tile),
        level=quality,
        colorspace="RGB",
        outcolorspace="YCBCR",
        subsampling=(2, 2),
    )
    return bytes(data)


def _shrink(rgb: np.ndarray) -> np.ndarray:
    """Area-average by :data:`_FACTOR` (both sides are multiples of it)."""
    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (w // _FACTOR, h // _FACTOR), interpolation=cv2.INTER_AREA)


class _CoarseLevel:
    """Collects the rows of one coarser level as they are made; keeps its tiles as JPEG.

    Rows arrive as strips whose height is a multiple of :data:`_FACTOR`.  Each complete
    band of ``tile`` rows is cut into encoded tiles and, shrunk, passed on to the next
    coarser level.
    """

    def __init__(self, dims: tuple[int, int], tile: int, quality: int) -> None:
        self.width, self.height = dims
        self.tile = tile
        self.quality = quality
        self.tiles_across = math.ceil(self.width / tile)
        self.tiles_down = math.ceil(self.height / tile)
        self.padded_width = self.tiles_across * tile
        self.encoded: list[bytes] = []
        self.coarser: _CoarseLevel | None = None
        self._rows: list[np.ndarray] = []
        self._row_count = 0

    def add(self, strip: np.ndarray) -> None:
        strip = self._fit_width(strip)
        self._rows.append(strip)
        self._row_count += strip.shape[0]
        while (
            self._row_count >= self.tile and len(self.encoded) < self.tiles_across * self.tiles_down
        ):
            band = np.concatenate(self._rows, axis=0)
            self._emit(band[: self.tile])
            rest = band[self.tile :]
            self._rows = [rest] if rest.shape[0] else []
            self._row_count = rest.shape[0]

    def finish(self) -> None:
        while len(self.encoded) < self.tiles_across * self.tiles_down:
            band = (
                np.concatenate(self._rows, axis=0)
                if self._rows
                else np.empty((0, self.padded_width, 3), np.uint8)
            )
            filler = np.full((self.tile - band.shape[0], self.padded_width, 3), GLASS_RGB, np.uint8)
            self._emit(np.concatenate([band[: self.tile], filler], axis=0))
            self._rows, self._row_count = [], 0
        if self.coarser is not None:
            self.coarser.finish()

    def _fit_width(self, strip: np.ndarray) -> np.ndarray:
        w = strip.shape[1]
        if w >= self.padded_width:
            return strip[:, : self.padded_width]
        filler = np.full((strip.shape[0], self.padded_width - w, 3), GLASS_RGB, np.uint8)
        return np.concatenate([strip, filler], axis=1)

    def _emit(self, band: np.ndarray) -> None:
        t = self.tile
        for tx in range(self.tiles_across):
            self.encoded.append(_encode_jpeg(band[:, tx * t : (tx + 1) * t], self.quality))
        if self.coarser is not None:
            self.coarser.add(_shrink(band))


def _write_prostate_slide(
    path: Path, params: SynthParams, progress: Progress | None, workers: int | None
) -> SynthOutput:
    layout = make_prostate_layout(params.width, params.height, params.seed, params.mpp)
    renderer = ProstateRenderer(layout, params.seed, params.mpp)
    workers = workers or max(1, min(8, os.cpu_count() or 1))
    mask_path, geojson_path = truth_paths(path)
    truth_path = truth_json_path(path)
    truth = prostate_truth(layout, params)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        dims = _write_pyramid(tmp, params, renderer, workers, progress)
        _write_label_mask(mask_path, layout)
        _write_prostate_geojson(geojson_path, layout)
        _write_text(truth_path, json.dumps(truth, indent=2) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    tissue = layout.tissue_mask
    return SynthOutput(
        slide=path,
        mask=mask_path,
        geojson=geojson_path,
        level_dimensions=dims,
        mask_l0_per_px=layout.l0_per_px,
        tissue_fraction=float(tissue.mean()),
        tumour_fraction_of_tissue=float(truth["tumour_fraction_of_tissue"]),
        truth_json=truth_path,
        truth=truth,
    )


def _write_pyramid(
    path: Path,
    params: SynthParams,
    renderer: _Renderer,
    workers: int,
    progress: Progress | None,
) -> tuple[tuple[int, int], ...]:
    import tifffile

    dims = pyramid_dimensions(params.width, params.height)
    t = params.tile
    coarse = [_CoarseLevel(d, t, params.jpeg_quality) for d in dims[1:]]
    for finer, coarser in itertools.pairwise(coarse):
        finer.coarser = coarser
    tiles_across = math.ceil(params.width / t)
    tiles_down = math.ceil(params.height / t)
    glass = np.full((t, t, 3), GLASS_RGB, np.uint8)
    glass_jpeg = _encode_jpeg(glass, params.jpeg_quality)
    glass_small = _shrink(glass)

    def make_tile(tx: int, ty: int) -> tuple[bytes, np.ndarray]:
        l0_x, l0_y = tx * t, ty * t
        if not renderer.layout.has_tissue(l0_x, l0_y, t, t):
            return glass_jpeg, glass_small
        rgb = renderer.render(l0_x, l0_y, t, t)
        return _encode_jpeg(rgb, params.jpeg_quality), _shrink(rgb)

    def level0_tiles(pool: ThreadPoolExecutor) -> Iterator[bytes]:
        def submit_row(ty: int) -> list[Future[tuple[bytes, np.ndarray]]]:
            return [pool.submit(make_tile, tx, ty) for tx in range(tiles_across)]

        pending = submit_row(0)
        for ty in range(tiles_down):
            upcoming = submit_row(ty + 1) if ty + 1 < tiles_down else []
            done = [future.result() for future in pending]
            # hand the row to the coarser levels before its tiles go out: the writer
            # stops pulling after the last tile, so nothing after that yield would run
            if coarse:
                coarse[0].add(np.concatenate([small for _, small in done], axis=1))
            for tx, (encoded, _small) in enumerate(done):
                yield encoded
                if progress is not None:
                    progress(ty * tiles_across + tx + 1, tiles_across * tiles_down)
            pending = upcoming

    resolution = (1e4 / params.mpp, 1e4 / params.mpp)
    description = json.dumps(
        {
            "generator": "slidelens synth",
            "seed": params.seed,
            "mpp": params.mpp,
            "kind": params.kind,
            "note": "synthetic H&E-like tissue, not a real specimen",
        }
    )
    common = dict(
        dtype=np.uint8,
        tile=(t, t),
        photometric="rgb",
        compression="jpeg",
        subsampling=(2, 2),
        resolutionunit="CENTIMETER",
        software=SYNTH_SOFTWARE,
        metadata=None,
    )
    bigtiff = params.width * params.height * 3 > 2**31
    with (
        tifffile.TiffWriter(path, bigtiff=bigtiff) as tif,
        ThreadPoolExecutor(workers, thread_name_prefix="synth") as pool,
    ):
        tif.write(
            level0_tiles(pool),
            shape=(params.height, params.width, 3),
            resolution=resolution,
            description=description,
            **common,  # type: ignore[arg-type]
        )
        if coarse:
            coarse[0].finish()
        for level, (w, h) in zip(coarse, dims[1:], strict=True):
            factor = params.width / w
            tif.write(
                iter(level.encoded),
                shape=(h, w, 3),
                resolution=(resolution[0] / factor, resolution[1] / factor),
                subfiletype=1,
                **common,  # type: ignore[arg-type]
            )
    return dims


# -- ground truth -----------------------------------------------------------------------


def _write_mask(path: Path, layout: SynthLayout) -> None:
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(MASK_SCALE_KEY, str(layout.l0_per_px))
    info.add_text("slidelens:slide_size", f"{layout.l0_width},{layout.l0_height}")
    info.add_text("slidelens:meaning", "255 = tumour, 0 = not tumour (synthetic ground truth)")
    mask = layout.truth_mask.astype(np.uint8) * 255
    tmp = path.with_name(f".{path.name}.partial")
    Image.fromarray(mask, mode="L").save(tmp, format="PNG", pnginfo=info)
    os.replace(tmp, path)


def truth_polygons(mask: np.ndarray, l0_per_px: float) -> list[list[list[list[float]]]]:
    """Polygons (outer ring, then holes; closed rings) of a boolean mask, in level-0 px.

    Traced on the mask doubled in size, through the centres of its boundary pixels, so
    every edge lies within a quarter of a mask pixel of the true pixel edge.
    """
    up = cv2.resize(mask.astype(np.uint8), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    contours, hierarchy = cv2.findContours(up, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    scale = l0_per_px / 2.0

    def ring(contour: np.ndarray) -> list[list[float]]:
        simplified = cv2.approxPolyDP(contour, 0.5, True)[:, 0, :]
        coords = [
            [round((float(x) + 0.5) * scale, 2), round((float(y) + 0.5) * scale, 2)]
            for x, y in simplified
        ]
        coords.append(coords[0])
        return coords

    polygons: list[list[list[list[float]]]] = []
    outer_index: dict[int, int] = {}
    links = hierarchy[0]
    for i, contour in enumerate(contours):
        if links[i][3] < 0 and len(contour) >= 3:
            outer_index[i] = len(polygons)
            polygons.append([ring(contour)])
    for i, contour in enumerate(contours):
        parent = int(links[i][3])
        if parent in outer_index and len(contour) >= 3:
            polygons[outer_index[parent]].append(ring(contour))
    return [p for p in polygons if len(p[0]) >= 4]


def _write_geojson(path: Path, layout: SynthLayout) -> None:
    features = [
        {
            "type": "Feature",
            "id": f"tumour-{i}",
            "geometry": {"type": "Polygon", "coordinates": rings},
            "properties": {
                "objectType": "annotation",
                "classification": TUMOUR_CLASS,
                "name": f"Tumour {i + 1} (synthetic ground truth)",
            },
        }
        for i, rings in enumerate(truth_polygons(layout.truth_mask, layout.l0_per_px))
    ]
    text = json.dumps({"type": "FeatureCollection", "features": features})
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text)
    os.replace(tmp, path)


# -- prostate ground truth -----------------------------------------------------------


def prostate_truth(layout: ProstateLayout, params: SynthParams) -> dict[str, Any]:
    """The slide-level truth of a prostate slide (``OUT.truth.json``), measured on its
    label mask: the area (mm²) and tissue share of every class, the area of each Gleason
    pattern and its share of the tumour, and the grade the slide was made to show
    (``gleason_score`` such as ``"3+4"`` or ``null``, ``isup_grade`` 0-5)."""
    plan = layout.plan
    counts = layout.label_counts()
    px_mm2 = (layout.l0_per_px * params.mpp / 1000.0) ** 2
    tissue = int(counts[1:].sum())
    tumour = int(sum(counts[label] for label in PATTERN_LABELS.values()))

    def share(num: int, den: int) -> float:
        return round(num / den, 6) if den else 0.0

    return {
        "slidelens_truth": 1,
        "kind": "prostate",
        "seed": params.seed,
        "mpp": params.mpp,
        "labels": {str(i): name for i, name in enumerate(PROSTATE_CLASSES)},
        "class_names": list(PROSTATE_CLASSES),
        "tissue_area_mm2": round(tissue * px_mm2, 6),
        "class_area_mm2": {
            name: round(int(counts[i]) * px_mm2, 6) for i, name in enumerate(PROSTATE_CLASSES)
        },
        "class_fraction": {
            name: share(int(counts[i]), tissue) for i, name in enumerate(PROSTATE_CLASSES) if i > 0
        },
        "pattern_area_mm2": {
            str(p): round(int(counts[label]) * px_mm2, 6) for p, label in PATTERN_LABELS.items()
        },
        "pattern_fraction_of_tumour": {
            str(p): share(int(counts[label]), tumour) for p, label in PATTERN_LABELS.items()
        },
        "tumour_area_mm2": round(tumour * px_mm2, 6),
        "tumour_fraction_of_tissue": share(tumour, tissue),
        "primary_pattern": plan.primary or None,
        "secondary_pattern": plan.secondary or None,
        "gleason_score": plan.gleason_score,
        "isup_grade": plan.isup_grade,
        "biopsy": True,
        "note": "synthetic needle biopsy; the grade group is the seed modulo 6",
    }


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text)
    os.replace(tmp, path)


def _write_label_mask(path: Path, layout: ProstateLayout) -> None:
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(MASK_SCALE_KEY, str(layout.l0_per_px))
    info.add_text("slidelens:slide_size", f"{layout.l0_width},{layout.l0_height}")
    meaning = ", ".join(f"{i} = {name}" for i, name in enumerate(PROSTATE_CLASSES))
    info.add_text("slidelens:meaning", f"label image (PANDA Radboud): {meaning}")
    tmp = path.with_name(f".{path.name}.partial")
    Image.fromarray(layout.labels, mode="L").save(tmp, format="PNG", pnginfo=info)
    os.replace(tmp, path)


def _write_prostate_geojson(path: Path, layout: ProstateLayout) -> None:
    features = []
    for label in range(1, len(PROSTATE_CLASSES)):
        name = PROSTATE_DISPLAY_NAMES[label]
        classification = {"name": name, "color": _PROSTATE_COLOURS[label]}
        polygons = truth_polygons(layout.labels == label, layout.l0_per_px)
        for i, rings in enumerate(polygons):
            features.append(
                {
                    "type": "Feature",
                    "id": f"{PROSTATE_CLASSES[label]}-{i}",
                    "geometry": {"type": "Polygon", "coordinates": rings},
                    "properties": {
                        "objectType": "annotation",
                        "classification": classification,
                        "name": f"{name} {i + 1} (synthetic ground truth)",
                    },
                }
            )
    _write_text(path, json.dumps({"type": "FeatureCollection", "features": features}))

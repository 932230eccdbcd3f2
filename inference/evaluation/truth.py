"""Ground truth for a slide: a mask image aligned to it, or GeoJSON polygons, as one mask.

A mask image covers the whole slide at some scale: its level-0 pixels per mask pixel
come from the PNG text ``slidelens:l0_per_px`` (what ``slidelens synth`` writes) or, when
absent, from its size against the slide's.  GeoJSON polygons (QuPath-style, level-0
pixel coordinates) are rasterised at a chosen scale.  Both are untrusted input: sizes
are bounded and every refusal names the file and the problem.

How a mask image's pixel values are read is decided from the values present (see
:func:`read_mask_values`): a 1-bit image, 0/255, 0/1 (the usual way segmentation masks are
saved) and a label image (pixel value = class index, e.g. PANDA's 0-5) all work; a
grey image with soft edges (a JPEG, an anti-aliased drawing) is thresholded at 128.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference.core.geometry import Rect
from inference.core.polygon_fill import fill_coverage, ring_edges
from inference.slides.base import MASK_SCALE_KEY

#: Masks and rasterised polygons keep their longer side within this many pixels.
MAX_TRUTH_SIDE = 8192
MAX_GEOJSON_BYTES = 256 * 1024 * 1024
MAX_TOTAL_VERTICES = 20_000_000
_IMAGE_SUFFIXES = {".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp"}
#: A mask whose aspect differs from the slide's by more than this is not aligned to it.
_ASPECT_TOLERANCE = 0.02


class TruthError(ValueError):
    """Ground truth that cannot be used; the message names the file and the cause."""

    def __init__(self, path: Path, cause: str) -> None:
        self.path = path
        self.cause = cause
        super().__init__(f"{path.name}: {cause}  [{path}]")


#: Largest pixel value read as a class index: a label image has a few classes; a grey
#: image with more distinct values than this is a soft-edged binary mask.
MAX_LABEL = 31


@dataclass(frozen=True)
class MaskValues:
    """How a mask image's pixel values were read.

    ``labels`` holds one class index per pixel (0 = negative / background); ``encoding``
    says which rule applied, in words for a person (``"0/255"``, ``"0/1"``,
    ``"1-bit"``, ``"labels 0-5"``, ``"grey, thresholded at 128"``); ``values`` are the
    distinct raw values found.
    """

    labels: np.ndarray
    encoding: str
    values: tuple[int, ...]


def read_mask_values(raw: np.ndarray, *, one_bit: bool = False) -> MaskValues:
    """Class indices from a mask's raw values, by the rule its values call for.

    * a 1-bit image (``one_bit``) or boolean array: positive = 1;
    * only 0 and 255: positive = 255 (read as class 1);
    * only 0 and 1, or integers up to :data:`MAX_LABEL`: a label image, each value is
      the class index (a 0/1 mask is the two-class label image);
    * anything else (a grey image with soft edges): class 1 where the value is >= 128.
    """
    values = tuple(int(v) for v in np.unique(raw))
    if one_bit or raw.dtype == bool:
        return MaskValues((raw != 0).astype(np.uint8), "1-bit", values)
    if set(values) <= {0, 255} and 255 in values:
        return MaskValues((raw == 255).astype(np.uint8), "0/255", values)
    if values and values[0] >= 0 and values[-1] <= MAX_LABEL:
        encoding = "0/1" if set(values) <= {0, 1} else f"labels {values[0]}-{values[-1]}"
        return MaskValues(raw.astype(np.uint8), encoding, values)
    return MaskValues((raw >= 128).astype(np.uint8), "grey, thresholded at 128", values)


@dataclass(frozen=True)
class TruthMask:
    """A boolean mask over the whole slide; ``mask[r, c]`` covers level-0 pixels
    ``[c * l0_per_px, (c + 1) * l0_per_px) x [r * l0_per_px, (r + 1) * l0_per_px)``.

    ``labels`` keeps the class index of each pixel when the truth was a label image
    (``None`` for a binary mask or polygons); ``encoding`` says how the file was read
    and ``note`` says what a person should know about it (e.g. that it holds a single
    value), or is empty.
    """

    mask: np.ndarray
    l0_per_px: float
    path: Path
    labels: np.ndarray | None = None
    encoding: str = ""
    note: str = ""

    @property
    def positive_fraction(self) -> float:
        return float(self.mask.mean()) if self.mask.size else 0.0

    def fraction_in(self, l0_rect: Rect) -> float:
        """Share of the mask pixels inside ``l0_rect`` that are positive (0 when none)."""
        scaled = l0_rect.scaled(1.0 / self.l0_per_px)
        x0, y0 = max(0, math.floor(scaled.x)), max(0, math.floor(scaled.y))
        x1 = min(self.mask.shape[1], math.ceil(scaled.right))
        y1 = min(self.mask.shape[0], math.ceil(scaled.bottom))
        if x1 <= x0 or y1 <= y0:
            return 0.0
        return float(self.mask[y0:y1, x0:x1].mean())

    @property
    def label_image(self) -> np.ndarray:
        """One class index per pixel: :attr:`labels`, or the binary mask as 0/1."""
        return self.labels if self.labels is not None else self.mask.astype(np.uint8)

    def label_fractions_in(self, l0_rect: Rect, n_labels: int) -> np.ndarray:
        """``(n_labels,)`` float64: the share of each label among the mask pixels that
        ``l0_rect`` touches (the pixel-aligned window of :meth:`fraction_in`).  Pixels of
        the window outside the mask (past the slide's edge) count as label 0, and labels
        at or above ``n_labels`` count as nothing, so the shares sum to at most 1."""
        scaled = l0_rect.scaled(1.0 / self.l0_per_px)
        x0, y0 = math.floor(scaled.x), math.floor(scaled.y)
        x1, y1 = max(x0 + 1, math.ceil(scaled.right)), max(y0 + 1, math.ceil(scaled.bottom))
        total = (x1 - x0) * (y1 - y0)
        rows, cols = self.mask.shape
        window = self.label_image[max(0, y0) : min(rows, y1), max(0, x0) : min(cols, x1)]
        counts = np.bincount(window.ravel(), minlength=n_labels)[:n_labels].astype(np.float64)
        counts[0] += total - window.size
        out: np.ndarray = counts / total
        return out

    def resampled(self, shape: tuple[int, int], l0_per_px: float) -> np.ndarray:
        """The mask on another grid of ``shape`` (rows, cols) at ``l0_per_px``, by
        nearest neighbour at each target pixel's centre; outside the mask is False."""
        rows, cols = shape
        src_c = np.floor((np.arange(cols) + 0.5) * l0_per_px / self.l0_per_px).astype(np.intp)
        src_r = np.floor((np.arange(rows) + 0.5) * l0_per_px / self.l0_per_px).astype(np.intp)
        ok_c = (src_c >= 0) & (src_c < self.mask.shape[1])
        ok_r = (src_r >= 0) & (src_r < self.mask.shape[0])
        out = np.zeros((rows, cols), dtype=bool)
        inner = self.mask[np.clip(src_r, 0, self.mask.shape[0] - 1)][
            :, np.clip(src_c, 0, self.mask.shape[1] - 1)
        ]
        out[np.ix_(ok_r, ok_c)] = inner[np.ix_(ok_r, ok_c)]
        return out


def load_truth(
    path: str | Path,
    l0_dimensions: tuple[int, int],
    *,
    class_name: str | None = None,
    l0_per_px: float | None = None,
    l0_origin: tuple[float, float] = (0.0, 0.0),
) -> TruthMask:
    """Read a mask image or GeoJSON file as a :class:`TruthMask` for a slide of
    ``l0_dimensions`` (level-0 width, height).

    ``class_name`` keeps only GeoJSON features of that classification (any case);
    ``l0_per_px`` sets the raster scale of polygons (default: the longer side within
    :data:`MAX_TRUTH_SIDE`, at least 1).  ``l0_origin`` is the level-0 point GeoJSON
    coordinates count from: the slide's bounds corner (``SlideInfo.l0_bounds``), as
    QuPath counts (a mask image always covers the slide from level-0 ``(0, 0)``).
    Raises :class:`TruthError`.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise TruthError(path, "no such file")
    if not path.is_file():
        raise TruthError(path, "is a folder, not a mask image or GeoJSON file")
    suffix = path.suffix.lower()
    if suffix in {".geojson", ".json"}:
        return _load_geojson(path, l0_dimensions, class_name, l0_per_px, l0_origin)
    if suffix in _IMAGE_SUFFIXES:
        return _load_mask_image(path, l0_dimensions)
    raise TruthError(
        path, f"unknown ground-truth type {suffix or '(none)'}; use a mask image or .geojson"
    )


def _load_mask_image(path: Path, l0_dimensions: tuple[int, int]) -> TruthMask:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
            if max(width, height) > 4 * MAX_TRUTH_SIDE:
                raise TruthError(path, f"{width} x {height} is too large for a mask")
            stated = image.info.get(MASK_SCALE_KEY) if image.format == "PNG" else None
            values = read_mask_values(_raw_values(image), one_bit=image.mode == "1")
    except (UnidentifiedImageError, OSError) as exc:
        raise TruthError(path, f"not a readable image ({exc})") from exc
    l0_w, l0_h = l0_dimensions
    if stated is not None:
        try:
            scale = float(stated)
        except ValueError:
            raise TruthError(path, f"{MASK_SCALE_KEY} is not a number: {stated!r}") from None
        if not scale > 0:
            raise TruthError(path, f"{MASK_SCALE_KEY} must be positive; got {stated}")
        if width * scale < l0_w - scale or height * scale < l0_h - scale:
            raise TruthError(
                path,
                f"at {scale:g} slide px per mask px it covers {width * scale:.0f} x "
                f"{height * scale:.0f} px, smaller than the slide ({l0_w} x {l0_h})",
            )
    else:
        scale_x, scale_y = l0_w / width, l0_h / height
        if abs(scale_x - scale_y) / max(scale_x, scale_y) > _ASPECT_TOLERANCE:
            raise TruthError(
                path,
                f"its shape ({width} x {height}) does not match the slide's "
                f"({l0_w} x {l0_h}); a mask must cover the whole slide",
            )
        scale = (scale_x + scale_y) / 2
    return _mask_from_values(path, values, scale)


def _raw_values(image: Any) -> np.ndarray:
    """The pixel values a mask stores: palette indices for a palette image (a label PNG
    keeps class indices there), the one channel of a grey image, and the grey level of
    a colour image."""
    if image.mode in ("1", "L", "P", "I", "I;16", "I;16B", "I;16L"):
        raw = np.asarray(image)
        return raw.astype(np.int64) if raw.dtype != bool and raw.dtype.kind != "u" else raw
    if image.mode in ("LA", "PA"):
        return np.asarray(image)[..., 0]
    return np.asarray(image.convert("L"))


def _mask_from_values(path: Path, values: MaskValues, scale: float) -> TruthMask:
    labels = values.labels
    mask = labels > 0
    label_image = values.encoding.startswith("labels")
    note = ""
    if len(values.values) == 1:
        only = values.values[0]
        meaning = "every pixel positive" if mask.any() else "no positive pixel"
        note = f"the mask holds a single value ({only}): {meaning}"
    elif label_image:
        note = f"label image ({values.encoding}): positive = any class above 0"
    return TruthMask(
        mask,
        scale,
        path,
        labels=labels if label_image else None,
        encoding=values.encoding,
        note=note,
    )


def _load_geojson(
    path: Path,
    l0_dimensions: tuple[int, int],
    class_name: str | None,
    l0_per_px: float | None,
    l0_origin: tuple[float, float],
) -> TruthMask:
    data = _read_geojson(path)
    keep = None if class_name is None else (lambda name: name.lower() == class_name.lower())
    scale, shape, polygons = _geojson_polygons(
        path, data, l0_dimensions, l0_per_px, keep, l0_origin
    )
    mask = np.zeros(shape, dtype=bool)
    for polygon in polygons:
        _fill(mask, ring_edges(list(polygon.rings)))
    if not polygons:
        wanted = f" of class {class_name!r}" if class_name else ""
        raise TruthError(path, f"no polygon features{wanted} found")
    return TruthMask(mask, float(scale), path, encoding="GeoJSON polygons")


@dataclass(frozen=True)
class TruthPolygon:
    """One polygon of a GeoJSON ground truth: the classification name of its feature
    (``""`` when it has none) and its rings (outer ring, then holes) in mask pixels."""

    class_name: str
    rings: tuple[np.ndarray, ...]


def read_geojson_polygons(
    path: str | Path,
    l0_dimensions: tuple[int, int],
    *,
    l0_per_px: float | None = None,
    l0_origin: tuple[float, float] = (0.0, 0.0),
) -> tuple[float, tuple[int, int], list[TruthPolygon]]:
    """Every polygon of a GeoJSON ground truth for a slide of ``l0_dimensions``, in file
    order, at the raster scale :func:`load_truth` uses: ``(level-0 px per mask px,
    (rows, cols) of the mask, polygons)``; coordinates count from ``l0_origin`` (see
    :func:`load_truth`).  Raises :class:`TruthError` as :func:`load_truth` does (points
    and lines, which have no area, are skipped)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise TruthError(path, "no such file" if not path.exists() else "is a folder")
    data = _read_geojson(path)
    return _geojson_polygons(path, data, l0_dimensions, l0_per_px, None, l0_origin)


def _read_geojson(path: Path) -> Any:
    size = path.stat().st_size
    if size > MAX_GEOJSON_BYTES:
        raise TruthError(path, f"{size / 2**20:.0f} MiB is more than a GeoJSON file may be")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TruthError(path, f"not valid JSON ({exc})") from exc


def _geojson_polygons(
    path: Path,
    data: Any,
    l0_dimensions: tuple[int, int],
    l0_per_px: float | None,
    keep: Callable[[str], bool] | None,
    l0_origin: tuple[float, float] = (0.0, 0.0),
) -> tuple[float, tuple[int, int], list[TruthPolygon]]:
    l0_w, l0_h = l0_dimensions
    l0_origin_xy = np.asarray(l0_origin, np.float64)
    scale = l0_per_px or max(1.0, math.ceil(max(l0_w, l0_h) / MAX_TRUTH_SIDE))
    shape = (math.ceil(l0_h / scale), math.ceil(l0_w / scale))
    vertices = 0
    polygons: list[TruthPolygon] = []
    for index, feature in enumerate(_features(path, data)):
        name = _class_of(feature)
        if keep is not None and not keep(name):
            continue
        for polygon in _polygons(path, index, feature.get("geometry")):
            rings = []
            for ring in polygon:
                qp_points = _ring_points(path, index, ring)  # from the bounds' corner
                vertices += len(qp_points)
                if vertices > MAX_TOTAL_VERTICES:
                    raise TruthError(path, f"more than {MAX_TOTAL_VERTICES:,} vertices in all")
                # mask pixel (c, r) spans [c, c + 1) x [r, r + 1)
                rings.append((qp_points + l0_origin_xy) / scale)
            polygons.append(TruthPolygon(name, tuple(rings)))
    return float(scale), shape, polygons


def _fill(mask: np.ndarray, edges: np.ndarray, band_rows: int = 512) -> None:
    """Set the mask pixels whose centre is inside ``edges`` (even-odd), band by band so
    memory stays small for a large polygon."""
    if len(edges) == 0:
        return
    ys = edges[:, :, 1]
    r0 = max(0, int(np.floor(ys.min())))
    r1 = min(mask.shape[0], int(np.ceil(ys.max())) + 1)
    for top in range(r0, r1, band_rows):
        rows = min(band_rows, r1 - top)
        inside = fill_coverage(edges, 0, top, mask.shape[1], rows)
        if inside is not None:
            mask[top : top + rows] |= inside


def _features(path: Path, data: Any) -> Iterator[dict[str, Any]]:
    items: Any
    if isinstance(data, list):
        items = data
    elif isinstance(data, dict) and data.get("type") == "FeatureCollection":
        items = data.get("features")
        if not isinstance(items, list):
            raise TruthError(path, "FeatureCollection without a 'features' list")
    elif isinstance(data, dict) and data.get("type") == "Feature":
        items = [data]
    else:
        raise TruthError(path, "expected a GeoJSON FeatureCollection, Feature or list of Features")
    for index, item in enumerate(items):
        if not isinstance(item, dict) or item.get("type") != "Feature":
            raise TruthError(path, f"item {index} is not a GeoJSON Feature")
        yield item


def _class_of(feature: dict[str, Any]) -> str:
    props = feature.get("properties")
    if not isinstance(props, dict):
        return ""
    classification = props.get("classification")
    if isinstance(classification, dict):
        return str(classification.get("name", ""))
    return str(classification or "")


def _polygons(path: Path, index: int, geometry: Any) -> list[list[Any]]:
    if not isinstance(geometry, dict):
        return []
    kind, coords = geometry.get("type"), geometry.get("coordinates")
    polygons: Any
    if kind == "Polygon":
        polygons = [coords]
    elif kind == "MultiPolygon":
        polygons = coords if isinstance(coords, list) else None
    else:
        return []  # points and lines have no area
    if not isinstance(polygons, list) or not all(isinstance(p, list) and p for p in polygons):
        raise TruthError(path, f"feature {index}: {kind} coordinates are malformed")
    return polygons


def _ring_points(path: Path, index: int, ring: Any) -> np.ndarray:
    try:
        points = np.asarray(ring, dtype=np.float64)
    except (TypeError, ValueError):
        raise TruthError(path, f"feature {index}: a ring is not a list of [x, y] points") from None
    if points.ndim != 2 or points.shape[1] < 2:
        raise TruthError(path, f"feature {index}: a ring is not a list of [x, y] points")
    if len(points) < 4:
        raise TruthError(
            path, f"feature {index}: a ring has {len(points)} points; a ring needs at least 4"
        )
    if not np.isfinite(points).all() or np.abs(points).max() > 1e8:
        raise TruthError(path, f"feature {index}: coordinates must be finite level-0 pixels")
    return points[:, :2]

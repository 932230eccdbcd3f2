"""Writers for inference results: CSV, GeoJSON (QuPath), pyramidal TIFF heatmap, run JSON.

* CSV: one row per computed patch, WSInfer's columns: ``minx, miny, width, height``
  (level-0 pixels) then ``prob_<class>`` per class.
* GeoJSON: a FeatureCollection with one Polygon per computed patch, in level-0 pixel
  coordinates, with QuPath's properties: ``objectType`` ("tile"), ``classification``
  (the most probable class: name and RGB colour, the viewer's colour of that class
  from :func:`inference.core.palette.result_class_colours`) and ``measurements``
  (``prob_<class>``).  QuPath imports it with File > Import objects from file.
* Heatmap TIFF: one class's probability as uint8 (``round(255 * p)``; 0 also where no
  value), tiled and pyramidal (each level half the previous, as separate pages), its
  geometry (level-0 origin and level-0 pixels per heatmap pixel) in the JSON
  ImageDescription of the first page, and its physical resolution in the resolution
  tags when the slide's mpp is known.  A result of more than two classes adds one such
  pyramid per other class and one of its class map (:func:`write_heatmap_tiff`); every
  page's PageName tag says which image it belongs to.

Every writer writes a temporary sibling and renames it into place.
"""

from __future__ import annotations

import csv
import io
import json
import math
import uuid
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from inference.core.atomic_io import atomic_write, atomic_write_text
from inference.core.palette import result_class_colours
from inference.results.store import InferenceResult

#: Pyramid levels are added until the longer side is at most this.
_HEATMAP_MIN_LEVEL_SIDE = 256
_HEATMAP_TILE = 256


def class_colors(class_names: Sequence[str]) -> list[tuple[int, int, int]]:
    """The colour of each class, in class order: the viewer's class colours
    (:func:`inference.core.palette.result_class_colours`), so QuPath shows SlideLens's
    colours."""
    return result_class_colours(class_names)


def prob_columns(class_names: Sequence[str]) -> list[str]:
    return [f"prob_{name}" for name in class_names]


@dataclass(frozen=True)
class OutputPaths:
    """The files ``slidelens infer`` writes for one slide."""

    csv: Path
    geojson: Path
    heatmap: Path
    result: Path
    metadata: Path
    #: The slide report (:mod:`inference.results.slide_report`).
    slide_report: Path

    @classmethod
    def for_slide(cls, out_dir: Path, stem: str) -> OutputPaths:
        return cls(
            csv=out_dir / f"{stem}.csv",
            geojson=out_dir / f"{stem}.geojson",
            heatmap=out_dir / f"{stem}.heatmap.tiff",
            result=out_dir / f"{stem}.result.npz",
            metadata=out_dir / f"{stem}.run.json",
            slide_report=out_dir / f"{stem}.slide.json",
        )

    def all(self) -> tuple[Path, ...]:
        return (
            self.csv,
            self.geojson,
            self.heatmap,
            self.result,
            self.slide_report,
            self.metadata,
        )


def write_csv(path: Path, result: InferenceResult) -> int:
    """One row per computed patch; returns the number of rows."""
    rects, probs = result.patch_table()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["minx", "miny", "width", "height", *prob_columns(result.class_names)])
    for rect, row in zip(rects.tolist(), probs.tolist(), strict=True):
        writer.writerow([*rect, *(f"{p:.6f}" for p in row)])
    atomic_write_text(path, buffer.getvalue())
    return len(rects)


#: A one-output model's class applies at or above this probability unless its card says.
DEFAULT_THRESHOLD = 0.5


def geojson_features(
    result: InferenceResult,
    *,
    object_type: str = "tile",
    threshold: float = DEFAULT_THRESHOLD,
    l0_origin: tuple[float, float] = (0.0, 0.0),
) -> list[dict[str, Any]]:
    """QuPath-readable features, one Polygon per computed patch.

    A tile is classified by its most likely class; with a single output (a one-class
    model) the class applies at or above ``threshold`` and the tile is unclassified (no
    ``classification``) below it.  Every class probability is in ``measurements``.
    Coordinates are level-0 pixels counted from ``l0_origin``: the slide's bounds corner
    (``SlideInfo.l0_bounds``), where QuPath's image starts for a slide that states bounds.
    """
    rects, probs = result.patch_table()
    l0_origin_x, l0_origin_y = l0_origin
    names = result.class_names
    colors = class_colors(names)
    columns = prob_columns(names)
    one_output = len(names) == 1
    features = []
    for (l0_x, l0_y, w, h), row in zip(rects.tolist(), probs.tolist(), strict=True):
        # QuPath's image coordinates: level-0 pixels from the bounds' corner
        qp_x, qp_y = l0_x - l0_origin_x, l0_y - l0_origin_y
        ring = [[qp_x, qp_y], [qp_x + w, qp_y], [qp_x + w, qp_y + h], [qp_x, qp_y + h]]
        ring.append(ring[0])
        properties: dict[str, Any] = {"objectType": object_type, "isLocked": True}
        best = 0 if one_output else int(np.argmax(row))
        if not one_output or row[0] >= threshold:
            properties["classification"] = {"name": names[best], "color": list(colors[best])}
        properties["measurements"] = {c: round(p, 6) for c, p in zip(columns, row, strict=True)}
        features.append(
            {
                "type": "Feature",
                "id": str(uuid.uuid4()),
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": properties,
            }
        )
    return features


def write_geojson(
    path: Path,
    result: InferenceResult,
    *,
    object_type: str = "tile",
    threshold: float = DEFAULT_THRESHOLD,
    l0_origin: tuple[float, float] = (0.0, 0.0),
) -> int:
    """A FeatureCollection of the computed patches (see :func:`geojson_features`);
    returns the number of features."""
    features = geojson_features(
        result, object_type=object_type, threshold=threshold, l0_origin=l0_origin
    )
    collection = {"type": "FeatureCollection", "features": features}
    atomic_write_text(path, json.dumps(collection, separators=(",", ":")))
    return len(features)


def heatmap_uint8(values: np.ndarray) -> np.ndarray:
    """Probabilities to uint8 ``round(255 * p)``; NaN becomes 0."""
    clean = np.nan_to_num(np.clip(values, 0.0, 1.0), nan=0.0)
    return np.round(clean * 255.0).astype(np.uint8)


def _pyramid(image: np.ndarray, *, labels: bool = False) -> list[np.ndarray]:
    """``image`` and its halvings down to :data:`_HEATMAP_MIN_LEVEL_SIDE`: averaged for
    probabilities, by nearest neighbour for ``labels`` (which must not be averaged)."""
    import cv2

    interpolation = cv2.INTER_NEAREST if labels else cv2.INTER_AREA
    levels = [image]
    while max(levels[-1].shape) > _HEATMAP_MIN_LEVEL_SIDE:
        prev = levels[-1]
        size = (max(1, prev.shape[1] // 2), max(1, prev.shape[0] // 2))
        levels.append(cv2.resize(prev, size, interpolation=interpolation))
    return levels


#: Class-map page values: the class index, or these where a cell has no class.
CLASS_MAP_NO_VALUE = 255
CLASS_MAP_NO_CLASS = 254
_PROBABILITY_ENCODING = "uint8 = round(255 * probability); 0 also where nothing was computed"
_CLASS_MAP_ENCODING = (
    f"uint8 = index of the most likely class; {CLASS_MAP_NO_VALUE} where nothing was "
    f"computed, {CLASS_MAP_NO_CLASS} below a one-output model's threshold"
)
#: The TIFF PageName tag.
_PAGE_NAME_TAG = 285


def class_map_uint8(labels: np.ndarray) -> np.ndarray:
    """A class map's labels (:class:`~inference.results.class_map.ClassMap`) as the uint8
    class-map page: the class index, :data:`CLASS_MAP_NO_VALUE` and
    :data:`CLASS_MAP_NO_CLASS` for cells without a value or a class."""
    from inference.results.class_map import NO_CLASS, NO_VALUE

    if labels.size and int(labels.max()) >= CLASS_MAP_NO_CLASS:
        raise ValueError(f"a class-map page holds at most {CLASS_MAP_NO_CLASS} classes")
    out = labels.astype(np.uint8)
    out[labels == NO_VALUE] = CLASS_MAP_NO_VALUE
    out[labels == NO_CLASS] = CLASS_MAP_NO_CLASS
    return out


def write_heatmap_tiff(
    path: Path,
    result: InferenceResult,
    *,
    class_index: int = -1,
    mpp: float | None = None,
    extra: Mapping[str, Any] | None = None,
    class_pages: bool | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, Any]:
    """Write a pyramidal uint8 TIFF of the result; return its geometry.

    Its first image (page 0 and its reduced pages) is ``class_index``'s probability, with
    the geometry JSON as its description, so readers of a one-class heatmap
    (:func:`read_heatmap_geometry`) read any file alike.  With ``class_pages`` (default:
    when the result has more than two classes) the probability of every other class
    follows, in class order, then the class map (:func:`class_map_uint8`, of the
    :class:`~inference.results.class_map.ClassMap` at ``threshold``), each a pyramid of
    its own.  Every page's PageName tag names its image (``prob_<class>`` or
    ``class_map``) and the geometry's ``pages`` lists the images with the index of
    their first page (:func:`read_heatmap_page` reads one back).
    """
    import tifffile

    probs = result.probabilities()
    l0_origin, l0_per_px = result.raster_geometry()
    index = class_index % result.num_classes
    names = result.class_names
    images: list[tuple[dict[str, Any], list[np.ndarray]]] = []

    def add(kind: str, k: int | None, image: np.ndarray, encoding: str) -> None:
        name = f"prob_{names[k]}" if k is not None else "class_map"
        levels = _pyramid(image, labels=kind != "probability")
        page = sum(len(lv) for _, lv in images)
        entry = {
            "page": page,
            "levels": len(levels),
            "name": name,
            "kind": kind,
            "class_name": names[k] if k is not None else None,
            "class_index": k,
            "encoding": encoding,
        }
        images.append((entry, levels))

    add("probability", index, heatmap_uint8(probs[index]), _PROBABILITY_ENCODING)
    if class_pages is None:
        class_pages = result.num_classes > 2
    if class_pages:
        from inference.results.class_map import ClassMap

        for k in range(result.num_classes):
            if k != index:
                add("probability", k, heatmap_uint8(probs[k]), _PROBABILITY_ENCODING)
        labels = ClassMap.from_result(result, threshold=threshold).labels
        add("class_map", None, class_map_uint8(labels), _CLASS_MAP_ENCODING)
    first = images[0][1][0]
    geometry: dict[str, Any] = {
        "slidelens_heatmap": 1,
        "class_name": names[index],
        "class_index": index,
        "task": result.task,
        "encoding": _PROBABILITY_ENCODING,
        "l0_origin": [float(l0_origin[0]), float(l0_origin[1])],
        "l0_per_px": float(l0_per_px),
        "width": int(first.shape[1]),
        "height": int(first.shape[0]),
        "pages": [entry for entry, _ in images],
        **dict(extra or {}),
    }

    def write(fh: IO[bytes]) -> None:
        buffer = io.BytesIO()  # tifffile wants a named file or a BytesIO, not a bare fd
        with tifffile.TiffWriter(buffer) as tif:
            for number, (entry, levels) in enumerate(images):
                if number == 0:
                    description = json.dumps(geometry)
                else:
                    description = json.dumps({"slidelens_heatmap_page": 1, **entry})
                for level, data in enumerate(levels):
                    options: dict[str, Any] = {}
                    if mpp is not None and mpp > 0:
                        um_per_px = mpp * l0_per_px * (2**level)
                        options = {
                            "resolution": (1e4 / um_per_px, 1e4 / um_per_px),
                            "resolutionunit": "CENTIMETER",
                        }
                    tif.write(
                        np.ascontiguousarray(data),
                        photometric="minisblack",
                        tile=(_HEATMAP_TILE, _HEATMAP_TILE),
                        compression="zlib",
                        subfiletype=1 if level else 0,
                        description=description if level == 0 else None,
                        metadata=None,
                        extratags=[(_PAGE_NAME_TAG, "s", 0, entry["name"], True)],
                        **options,
                    )
        fh.write(buffer.getvalue())

    atomic_write(path, write)
    return geometry


def read_heatmap_page(path: Path, name: str, level: int = 0) -> np.ndarray:
    """One image of a heatmap TIFF (``prob_<class>`` or ``class_map``, at pyramid
    ``level``), as written by :func:`write_heatmap_tiff`.  Raises ``KeyError`` naming
    the images the file holds when it has no ``name``."""
    import tifffile

    geometry = read_heatmap_geometry(path)
    pages = geometry.get("pages") or [
        {"page": 0, "name": f"prob_{geometry['class_name']}", "levels": None}
    ]
    for entry in pages:
        if entry["name"] == name:
            if entry.get("levels") is not None and not 0 <= level < int(entry["levels"]):
                raise KeyError(f"{name} has {entry['levels']} levels, not level {level}")
            with tifffile.TiffFile(path) as tif:
                data: np.ndarray = tif.pages[int(entry["page"]) + level].asarray()
            return data
    held = ", ".join(str(entry["name"]) for entry in pages)
    raise KeyError(f"{Path(path).name} holds no image {name!r} (it holds {held})")


#: Names of the extra arrays of a result archive start with this (``slide_attention``).
EXTRA_PREFIX = "slide_"


def write_result_npz(
    path: Path, result: InferenceResult, extra: Mapping[str, np.ndarray] | None = None
) -> None:
    """The whole result (every class, overlap weights, background, embeddings when it
    has them), exactly, so viewers, ``slidelens evaluate`` and ``slidelens export`` can
    reload it with :func:`read_result_npz`.  ``extra`` arrays (slide-level outputs such
    as attention) are stored as ``slide_<name>`` and read back by
    :func:`read_result_extras`."""
    meta = json.dumps(result.meta())
    arrays = {
        **result.stored_arrays(),
        **{EXTRA_PREFIX + name: np.asarray(value) for name, value in (extra or {}).items()},
        "meta_json": np.frombuffer(meta.encode(), np.uint8),
    }
    atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))  # type: ignore[arg-type]


def read_result_extras(path: Path) -> dict[str, np.ndarray]:
    """The ``extra`` arrays :func:`write_result_npz` stored, by name (``{}`` for none).
    Raises ``ValueError`` naming the file when it is not readable."""
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            return {
                name.removeprefix(EXTRA_PREFIX): data[name]
                for name in data.files
                if name.startswith(EXTRA_PREFIX)
            }
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(
            f"{Path(path).name}: not a readable SlideLens result file ({exc})"
        ) from exc


def read_result_npz(path: Path) -> InferenceResult:
    """A result written by :func:`write_result_npz`.  Raises ``ValueError`` naming the
    file when it is not one (or is damaged)."""
    from inference.results.store import result_from_arrays

    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        meta = json.loads(arrays.pop("meta_json").tobytes().decode())
        return result_from_arrays(meta, arrays)
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path.name}: not a readable SlideLens result file ({exc})") from exc


def find_result(results_dir: Path, slide: Path) -> Path:
    """The ``<stem>.result.npz`` that ``slidelens infer --out results_dir`` wrote for
    ``slide``.  Raises ``FileNotFoundError`` naming what was looked for."""
    name = slide.name
    stem = next(
        (name[: -len(s)] for s in (".ome.tiff", ".ome.tif") if name.lower().endswith(s)),
        slide.stem,
    )
    path = Path(results_dir) / f"{stem}.result.npz"
    if not path.is_file():
        raise FileNotFoundError(
            f"no results for {slide.name} in {results_dir} (expected {path.name}; "
            f"run: slidelens infer {slide} --model NAME --out {results_dir})"
        )
    return path


def read_heatmap_geometry(path: Path) -> dict[str, Any]:
    """The geometry JSON stored in a heatmap TIFF written by :func:`write_heatmap_tiff`."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        doc: dict[str, Any] = json.loads(tif.pages[0].description)  # type: ignore[union-attr]
    return doc


def write_json(path: Path, doc: Mapping[str, Any]) -> None:
    """Pretty JSON, atomically; values JSON does not know become strings (NaN -> null)."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, Mapping):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        if isinstance(value, np.generic):
            return clean(value.item())
        if isinstance(value, Path):
            return str(value)
        return value

    atomic_write_text(path, json.dumps(clean(doc), indent=2, default=str) + "\n")

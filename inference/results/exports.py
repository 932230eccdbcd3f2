"""Writers for inference results: CSV, GeoJSON (QuPath), pyramidal TIFF heatmap, run JSON.

* CSV: one row per computed patch, WSInfer's columns: ``minx, miny, width, height``
  (level-0 pixels) then ``prob_<class>`` per class.
* GeoJSON: a FeatureCollection with one Polygon per computed patch, in level-0 pixel
  coordinates, with QuPath's properties: ``objectType`` ("tile"), ``classification``
  (the most probable class: name and RGB colour, the viewer's class colour of that
  index from :mod:`inference.core.palette`) and ``measurements``
  (``prob_<class>``).  QuPath imports it with File > Import objects from file.
* Heatmap TIFF: one class's probability as uint8 (``round(255 * p)``; 0 also where no
  value), tiled and pyramidal (each level half the previous, as separate pages), its
  geometry (level-0 origin and level-0 pixels per heatmap pixel) in the JSON
  ImageDescription of the first page, and its physical resolution in the resolution
  tags when the slide's mpp is known.

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
from inference.core.palette import class_colours
from inference.results.store import InferenceResult

#: Pyramid levels are added until the longer side is at most this.
_HEATMAP_MIN_LEVEL_SIDE = 256
_HEATMAP_TILE = 256


def class_colors(class_names: Sequence[str]) -> list[tuple[int, int, int]]:
    """The colour of each class, in class order: the viewer's class palette
    (:func:`inference.core.palette.class_colour`), so QuPath shows SlideLens's colours."""
    return class_colours(len(class_names))


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

    @classmethod
    def for_slide(cls, out_dir: Path, stem: str) -> OutputPaths:
        return cls(
            csv=out_dir / f"{stem}.csv",
            geojson=out_dir / f"{stem}.geojson",
            heatmap=out_dir / f"{stem}.heatmap.tiff",
            result=out_dir / f"{stem}.result.npz",
            metadata=out_dir / f"{stem}.run.json",
        )

    def all(self) -> tuple[Path, ...]:
        return (self.csv, self.geojson, self.heatmap, self.result, self.metadata)


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
    result: InferenceResult, *, object_type: str = "tile", threshold: float = DEFAULT_THRESHOLD
) -> list[dict[str, Any]]:
    """QuPath-readable features, one Polygon per computed patch.

    A tile is classified by its most likely class; with a single output (a one-class
    model) the class applies at or above ``threshold`` and the tile is unclassified (no
    ``classification``) below it.  Every class probability is in ``measurements``.
    """
    rects, probs = result.patch_table()
    names = result.class_names
    colors = class_colors(names)
    columns = prob_columns(names)
    one_output = len(names) == 1
    features = []
    for (x, y, w, h), row in zip(rects.tolist(), probs.tolist(), strict=True):
        ring = [[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]]
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
) -> int:
    """A FeatureCollection of the computed patches (see :func:`geojson_features`);
    returns the number of features."""
    features = geojson_features(result, object_type=object_type, threshold=threshold)
    collection = {"type": "FeatureCollection", "features": features}
    atomic_write_text(path, json.dumps(collection, separators=(",", ":")))
    return len(features)


def heatmap_uint8(values: np.ndarray) -> np.ndarray:
    """Probabilities to uint8 ``round(255 * p)``; NaN becomes 0."""
    clean = np.nan_to_num(np.clip(values, 0.0, 1.0), nan=0.0)
    return np.round(clean * 255.0).astype(np.uint8)


def _pyramid(image: np.ndarray) -> list[np.ndarray]:
    import cv2

    levels = [image]
    while max(levels[-1].shape) > _HEATMAP_MIN_LEVEL_SIDE:
        prev = levels[-1]
        size = (max(1, prev.shape[1] // 2), max(1, prev.shape[0] // 2))
        levels.append(cv2.resize(prev, size, interpolation=cv2.INTER_AREA))
    return levels


def write_heatmap_tiff(
    path: Path,
    result: InferenceResult,
    *,
    class_index: int = -1,
    mpp: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write one class's probabilities as a pyramidal uint8 TIFF; return its geometry."""
    import tifffile

    values, l0_origin, l0_per_px = result.heatmap(class_index)
    image = heatmap_uint8(values)
    name = result.class_names[class_index]
    geometry: dict[str, Any] = {
        "slidelens_heatmap": 1,
        "class_name": name,
        "class_index": class_index % result.num_classes,
        "task": result.task,
        "encoding": "uint8 = round(255 * probability); 0 also where nothing was computed",
        "l0_origin": [float(l0_origin[0]), float(l0_origin[1])],
        "l0_per_px": float(l0_per_px),
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        **dict(extra or {}),
    }
    levels = _pyramid(image)

    def write(fh: IO[bytes]) -> None:
        buffer = io.BytesIO()  # tifffile wants a named file or a BytesIO, not a bare fd
        with tifffile.TiffWriter(buffer) as tif:
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
                    description=json.dumps(geometry) if level == 0 else None,
                    metadata=None,
                    **options,
                )
        fh.write(buffer.getvalue())

    atomic_write(path, write)
    return geometry


def write_result_npz(path: Path, result: InferenceResult) -> None:
    """The whole result (every class, overlap weights, background), exactly, so viewers,
    ``slidelens evaluate`` and ``slidelens export`` can reload it with
    :func:`read_result_npz`."""
    meta = json.dumps(result.meta())
    arrays = {**result.arrays(), "meta_json": np.frombuffer(meta.encode(), np.uint8)}
    atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))  # type: ignore[arg-type]


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

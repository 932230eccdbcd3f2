"""The ``SlideSource`` protocol shared by OpenSlide slides and plain images."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from inference.core.geometry import Rect

#: Bytes read from each end of a file to fingerprint it (see :func:`content_fingerprint`).
_FINGERPRINT_CHUNK = 1 << 20


#: PNG text key of a mask aligned to a slide: level-0 pixels per mask pixel (what
#: ``slidelens synth`` writes and ground truth reads).
MASK_SCALE_KEY = "slidelens:l0_per_px"
#: The background of a brightfield slide, and of any slide that states none.
WHITE = (255, 255, 255)
#: The properties in which OpenSlide states the scanned area of a slide, in level-0 px.
BOUNDS_PROPERTIES = (
    "openslide.bounds-x",
    "openslide.bounds-y",
    "openslide.bounds-width",
    "openslide.bounds-height",
)


@dataclass(frozen=True)
class SlideInfo:
    """What is known about an open slide.

    ``level_dimensions[i]`` is ``(width, height)`` of level ``i`` in its own pixels;
    ``level_downsamples[i]`` is level-0 pixels per level-``i`` pixel (``[0] == 1``).
    ``mpp`` is level-0 microns per pixel (mean of x and y) or ``None`` when unknown.
    ``source_id`` is a stable content fingerprint: the same bytes give the same id,
    wherever the file lives.
    """

    path: Path
    source_id: str
    vendor: str
    level_dimensions: tuple[tuple[int, int], ...]
    level_downsamples: tuple[float, ...]
    mpp: float | None
    objective_power: float | None
    associated_images: tuple[str, ...] = ()
    properties: Mapping[str, str] = field(default_factory=dict)

    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 ``(width, height)``."""
        return self.level_dimensions[0]

    @property
    def level_count(self) -> int:
        return len(self.level_dimensions)

    @property
    def l0_bounds(self) -> Rect:
        """The level-0 rectangle that holds the scan.

        MIRAX and Hamamatsu VMS slides (among others) state it in
        ``openslide.bounds-x``/``-y``/``-width``/``-height``; around it lies empty glass
        that no scanner saw.  Those bounds are returned when all four are stated as
        integers (as QuPath parses them) and describe a non-empty rectangle inside the
        slide; otherwise, and for slides that state no bounds, the whole slide
        ``Rect(0, 0, width, height)``.
        """
        l0_w, l0_h = self.dimensions
        whole = Rect(0, 0, l0_w, l0_h)
        try:
            x, y, w, h = (int(str(self.properties[name]).strip()) for name in BOUNDS_PROPERTIES)
        except (KeyError, ValueError):
            return whole
        if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > l0_w or y + h > l0_h:
            return whole
        return Rect(x, y, w, h)

    @property
    def l0_bounds_origin(self) -> tuple[float, float]:
        """The level-0 point GeoJSON coordinates count from: the top-left corner of
        :attr:`l0_bounds`, where QuPath's image starts (``(0, 0)`` without bounds)."""
        bounds = self.l0_bounds
        return float(bounds.x), float(bounds.y)

    @property
    def background_rgb(self) -> tuple[int, int, int]:
        """The colour of the glass around the scan: the slide's stated
        ``openslide.background-color`` (``RRGGBB``), else white (brightfield)."""
        stated = str(self.properties.get("openslide.background-color", "")).strip().lstrip("#")
        if len(stated) == 6:
            try:
                value = int(stated, 16)
            except ValueError:
                return WHITE
            return (value >> 16) & 255, (value >> 8) & 255, value & 255
        return WHITE


@runtime_checkable
class SlideSource(Protocol):
    """A pyramidal image that many threads may read at once.

    ``read_region`` returns an ``(h, w, 3)`` uint8 RGB array of level ``level``
    starting at level pixel ``(lv_x, lv_y)``; areas outside the level are white and
    transparency is flattened onto white.  It raises :class:`SlideError` subclasses
    only.  ``close`` waits for reads in progress, then releases the file; reads after
    ``close`` raise :class:`SlideClosedError`.
    """

    @property
    def info(self) -> SlideInfo: ...

    def read_region(self, level: int, lv_x: int, lv_y: int, w: int, h: int) -> np.ndarray: ...

    def read_region_bgrx(self, level: int, lv_x: int, lv_y: int, w: int, h: int) -> np.ndarray:
        """The same region as ``(h, w, 4)`` uint8 bytes B, G, R, 255, flattened onto white.

        That is the memory layout of a 32-bit ``0xffRRGGBB`` pixel on little-endian
        machines, which display toolkits paint without conversion; sources implement it
        natively where that saves copies (the viewer's tile path).
        """
        ...

    def associated_image(self, name: str) -> np.ndarray: ...

    def thumbnail(self, max_size: int) -> np.ndarray: ...

    def close(self) -> None: ...


def content_fingerprint(path: Path) -> str:
    """A stable id of a file's content: SHA-256 over its size and its first and last MiB.

    Cheap for a multi-GB slide, and unchanged when the file is renamed or moved.
    """
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as fh:
        digest.update(fh.read(_FINGERPRINT_CHUNK))
        if size > _FINGERPRINT_CHUNK:
            fh.seek(max(_FINGERPRINT_CHUNK, size - _FINGERPRINT_CHUNK), os.SEEK_SET)
            digest.update(fh.read(_FINGERPRINT_CHUNK))
    return digest.hexdigest()[:24]


def rgb_to_bgrx(rgb: np.ndarray) -> np.ndarray:
    """``(h, w, 3)`` RGB to ``(h, w, 4)`` B, G, R, 255 (see ``SlideSource.read_region_bgrx``)."""
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGRA)


def flatten_premultiplied_bgra(bgra: np.ndarray) -> np.ndarray:
    """Premultiplied BGRA over white, in place where opaque; alpha set to 255.

    For premultiplied colour ``c`` and alpha ``a`` the result over white is
    ``c + (255 - a)`` exactly.
    """
    alpha = cv2.extractChannel(bgra, 3)
    if cv2.minMaxLoc(alpha)[0] == 255:
        return bgra
    white_gap = (255 - alpha)[..., None].astype(np.uint16)
    out = np.empty_like(bgra)
    out[..., :3] = np.minimum(bgra[..., :3].astype(np.uint16) + white_gap, 255).astype(np.uint8)
    out[..., 3] = 255
    return out


def flatten_alpha(rgba: np.ndarray) -> np.ndarray:
    """Composite a uint8 straight-alpha RGBA array over white; return contiguous RGB.

    openslide-python un-premultiplies what OpenSlide returns, so the alpha is straight.
    """
    if rgba.ndim == 3 and rgba.shape[2] == 3:
        return np.ascontiguousarray(rgba)
    rgba = np.ascontiguousarray(rgba)
    alpha = cv2.extractChannel(rgba, 3)
    # cv2 instead of numpy slicing: a strided RGBA->RGB copy is ~50x slower in numpy
    if cv2.minMaxLoc(alpha)[0] == 255:
        return cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB)
    rgb = rgba[..., :3].astype(np.uint32)
    a = alpha[..., None].astype(np.uint32)
    out = (rgb * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)

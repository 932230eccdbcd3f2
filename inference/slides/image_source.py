"""Plain images (PNG, JPEG, BMP, WebP, untiled TIFF) held in memory as a small pyramid."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageCms

from inference.slides._readers import ReaderGate
from inference.slides.base import SlideInfo, flatten_alpha, rgb_to_bgrx
from inference.slides.errors import CorruptSlideError, SlideTooLargeError, UnsupportedFormatError

#: Plain images above this many pixels are refused: they would not fit in memory honestly.
MAX_PLAIN_IMAGE_PIXELS = 400_000_000
#: Coarser levels are made until the longer side is at most this.
_MIN_LEVEL_SIDE = 1024
#: Resolutions coarser than this (um/px) are screen or print DPI, not microscope pixels.
_MAX_PLAUSIBLE_MPP = 50.0


def _mpp_from_pil(image: Image.Image) -> float | None:
    """Microns per pixel from TIFF resolution tags or a PNG ``pHYs`` chunk, when plausible."""
    mpp: float | None = None
    if image.format == "TIFF":
        tags = getattr(image, "tag_v2", {})
        unit = tags.get(296, 2)  # ResolutionUnit: 2 inch, 3 centimetre
        res = tags.get(282)
        if res:
            per_unit = float(res)
            if per_unit > 0 and unit in (2, 3):
                mpp = (25400.0 if unit == 2 else 10000.0) / per_unit
    elif image.format == "PNG":
        phys = image.info.get("dpi")
        if phys and phys[0] and image.info.get("unit_meters", True):
            mpp = 25400.0 / float(phys[0])
    if mpp is None or not 0 < mpp <= _MAX_PLAUSIBLE_MPP:
        return None
    return mpp


def _decode(path: Path) -> tuple[np.ndarray, float | None, str]:
    """Decode the whole image to RGB (alpha over white, ICC converted to sRGB)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image: Image.Image = Image.open(path)
            width, height = image.size
            if width * height > MAX_PLAIN_IMAGE_PIXELS:
                raise SlideTooLargeError(
                    path,
                    f"{width} x {height} pixels is too large to open as a plain image; "
                    "convert it to a tiled pyramidal TIFF (for example with vips tiffsave "
                    "--tile --pyramid --compression jpeg)",
                )
            image.load()
        except SlideTooLargeError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise SlideTooLargeError(path, f"the image is too large to open ({exc})") from exc
        except Image.UnidentifiedImageError as exc:
            raise UnsupportedFormatError(path, "the image format is not recognised") from exc
        except (OSError, SyntaxError, ValueError) as exc:
            raise CorruptSlideError(
                path, f"the image data is truncated or damaged and cannot be decoded ({exc})"
            ) from exc
    fmt = image.format or "image"
    mpp = _mpp_from_pil(image)
    icc = image.info.get("icc_profile")
    if icc:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            mode = "RGBA" if "A" in image.getbands() else "RGB"
            image = (
                ImageCms.profileToProfile(
                    image.convert(mode), src, ImageCms.createProfile("sRGB"), outputMode=mode
                )
                or image
            )
        except (ImageCms.PyCMSError, OSError):
            pass  # a broken profile is ignored: the pixels are still usable as they are
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgb = flatten_alpha(np.asarray(image.convert("RGBA")))
    else:
        rgb = np.ascontiguousarray(np.asarray(image.convert("RGB")))
    return rgb, mpp, fmt


class ImageSource:
    """A :class:`~inference.slides.base.SlideSource` over a decoded plain image.

    Level 0 is the image; coarser levels (each half the previous) are made in memory
    until the longer side is at most 1024 px.  Reads are array slices, thread-safe.
    """

    def __init__(self, path: Path, source_id: str) -> None:
        self._path = path
        self._gate = ReaderGate(path)
        rgb, mpp, fmt = _decode(path)
        levels = [rgb]
        while max(levels[-1].shape[:2]) > _MIN_LEVEL_SIDE:
            prev = levels[-1]
            size = (max(1, prev.shape[1] // 2), max(1, prev.shape[0] // 2))
            levels.append(cv2.resize(prev, size, interpolation=cv2.INTER_AREA))
        self._levels = levels
        l0_h, l0_w = rgb.shape[:2]
        self._info = SlideInfo(
            path=path,
            source_id=source_id,
            vendor=f"plain-{fmt.lower()}",
            level_dimensions=tuple((lv.shape[1], lv.shape[0]) for lv in levels),
            level_downsamples=tuple(l0_w / lv.shape[1] for lv in levels),
            mpp=mpp,
            objective_power=None,
            associated_images=(),
            properties={"format": fmt, "width": str(l0_w), "height": str(l0_h)},
        )

    @property
    def info(self) -> SlideInfo:
        return self._info

    def read_region(self, level: int, lv_x: int, lv_y: int, w: int, h: int) -> np.ndarray:
        out = np.full((max(h, 0), max(w, 0), 3), 255, np.uint8)
        with self._gate.reading():
            if not 0 <= level < len(self._levels):
                raise ValueError(f"level {level} outside 0..{len(self._levels) - 1}")
            data = self._levels[level]
            lv_h, lv_w = data.shape[:2]
            x0, y0 = max(lv_x, 0), max(lv_y, 0)
            x1, y1 = min(lv_x + w, lv_w), min(lv_y + h, lv_h)
            if x1 > x0 and y1 > y0:
                out[y0 - lv_y : y1 - lv_y, x0 - lv_x : x1 - lv_x] = data[y0:y1, x0:x1]
        return out

    def read_region_bgrx(self, level: int, lv_x: int, lv_y: int, w: int, h: int) -> np.ndarray:
        return rgb_to_bgrx(self.read_region(level, lv_x, lv_y, w, h))

    def associated_image(self, name: str) -> np.ndarray:
        raise KeyError(f"{self._path.name} has no associated image {name!r}")

    def thumbnail(self, max_size: int) -> np.ndarray:
        from inference.slides.thumbnails import thumbnail_from_levels

        return thumbnail_from_levels(self, max_size)

    def close(self) -> None:
        self._gate.close()
        self._levels = []

"""``open_slide``: pre-flight checks, the right reader, and a precise error for every failure."""

from __future__ import annotations

from pathlib import Path

import openslide

from inference.slides.base import SlideSource, content_fingerprint
from inference.slides.errors import (
    CorruptSlideError,
    SlideError,
    SlideTooLargeError,
    UnsupportedCompressionError,
    UnsupportedFormatError,
)
from inference.slides.image_source import ImageSource
from inference.slides.openslide_source import OpenSlideSource
from inference.slides.preflight import FileKind, check_file

#: No scanner makes slides wider or taller than this; a header that says so is damaged.
MAX_HONEST_SIDE = 2_000_000

#: TIFF compressions OpenSlide decodes: none, LZW, JPEG, deflate, PackBits, Zstandard and
#: Aperio's JPEG 2000 (measured with openslide-bin 4.0.1).
_OPENSLIDE_TIFF_COMPRESSIONS = {1, 5, 6, 7, 8, 32773, 32946, 33003, 33005, 50000}


def open_slide(path: str | Path) -> SlideSource:
    """Open a whole-slide image or plain image for reading.

    Raises a :class:`SlideError` subclass whose message names the file and the cause.
    The returned source has been probed: its coarsest level decodes.
    """
    path = Path(path).expanduser()
    kind = check_file(path)
    source_id = content_fingerprint(path)
    source: SlideSource
    if kind is FileKind.PLAIN_IMAGE:
        source = ImageSource(path, source_id)
    elif kind is FileKind.TIFF and openslide.OpenSlide.detect_format(str(path)) is None:
        source = _open_plain_tiff(path, source_id)
    else:
        try:
            source = OpenSlideSource(path, source_id)
        except openslide.OpenSlideUnsupportedFormatError as exc:
            raise _diagnose(path, kind, exc) from exc
        except openslide.OpenSlideError as exc:
            raise _diagnose(path, kind, exc) from exc
    try:
        _check_dimensions(source)
        _probe(source, kind)
    except BaseException:
        source.close()
        raise
    return source


def _open_plain_tiff(path: Path, source_id: str) -> SlideSource:
    """A TIFF OpenSlide does not recognise: an untiled image, or an unsupported one."""
    compression = _tiff_compression(path)
    if compression is not None and compression not in _OPENSLIDE_TIFF_COMPRESSIONS:
        raise _unsupported_compression(path, compression)
    try:
        return ImageSource(path, source_id)
    except UnsupportedFormatError:
        raise UnsupportedFormatError(
            path, "this TIFF is neither a slide format OpenSlide reads nor a plain RGB image"
        ) from None


def _tiff_compression(path: Path) -> int | None:
    """The compression code of the first TIFF page, or ``None`` if the TIFF can't be parsed."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return int(tif.pages[0].compression)
    except Exception:  # tifffile raises many types for damaged files
        return None


def _unsupported_compression(path: Path, compression: int) -> UnsupportedCompressionError:
    import tifffile

    try:
        name = tifffile.COMPRESSION(compression).name
    except ValueError:
        name = "unknown"
    return UnsupportedCompressionError(
        path,
        f"its pixels use {name} compression (TIFF code {compression}), which OpenSlide "
        "cannot decode; convert it to a JPEG-compressed tiled pyramidal TIFF",
    )


def _diagnose(path: Path, kind: FileKind, exc: Exception) -> SlideError:
    """Turn OpenSlide's terse failure into the cause a person can act on."""
    if kind is FileKind.TIFF:
        compression = _tiff_compression(path)
        if compression is None:
            return CorruptSlideError(
                path, f"the TIFF structure is damaged or truncated and cannot be read ({exc})"
            )
        if compression not in _OPENSLIDE_TIFF_COMPRESSIONS:
            return _unsupported_compression(path, compression)
        return CorruptSlideError(path, f"OpenSlide could not read this TIFF slide: {exc}")
    if kind is FileKind.OPENSLIDE_OTHER:
        return CorruptSlideError(
            path,
            f"OpenSlide could not open it ({exc}); for MIRAX and VMS slides the companion "
            "folder or files must sit beside this file",
        )
    return CorruptSlideError(path, f"OpenSlide could not open it: {exc}")


def _check_dimensions(source: SlideSource) -> None:
    info = source.info
    l0_w, l0_h = info.dimensions
    if l0_w <= 0 or l0_h <= 0:
        raise CorruptSlideError(info.path, f"the slide claims an empty size ({l0_w} x {l0_h})")
    if max(l0_w, l0_h) > MAX_HONEST_SIDE:
        raise SlideTooLargeError(
            info.path,
            f"the header claims {l0_w} x {l0_h} pixels, larger than any scanner makes; "
            "the file is probably damaged",
        )


def _probe(source: SlideSource, kind: FileKind) -> None:
    """Decode a little of the coarsest level so a damaged file fails now, not on screen."""
    info = source.info
    level = info.level_count - 1
    lv_w, lv_h = info.level_dimensions[level]
    w, h = min(lv_w, 64), min(lv_h, 64)
    try:
        source.read_region(level, (lv_w - w) // 2, (lv_h - h) // 2, w, h)
    except SlideError as exc:
        if kind is FileKind.TIFF:
            compression = _tiff_compression(info.path)
            if compression is not None and compression not in _OPENSLIDE_TIFF_COMPRESSIONS:
                raise _unsupported_compression(info.path, compression) from exc
        raise CorruptSlideError(
            info.path, f"the image data is damaged or truncated ({exc.cause})"
        ) from exc

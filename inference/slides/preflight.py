"""Checks that run before any decoder sees a file, so each failure gets its own message.

OpenSlide alone answers "Unsupported or missing image file" for a missing file, a
folder, an unreadable file, an empty file, a text file and a truncated TIFF alike.
These checks tell them apart and decide which reader should open the file.
"""

from __future__ import annotations

import os
import struct
from enum import Enum
from pathlib import Path

from inference.slides.errors import (
    CorruptSlideError,
    SlideEmptyError,
    SlideIsDirectoryError,
    SlideNotFoundError,
    SlidePermissionError,
    UnsupportedFormatError,
)

#: Extensions whose files OpenSlide opens by name or by a companion folder.
OPENSLIDE_EXTENSIONS = frozenset(
    {".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".svslide", ".bif", ".dcm"}
)
#: Extensions of plain images read whole into memory.
PLAIN_IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})

_HEADER_BYTES = 132


class FileKind(Enum):
    """What the first bytes of a file say it is."""

    TIFF = "tiff"  # classic or BigTIFF, the container of most slide formats
    PLAIN_IMAGE = "plain-image"  # PNG, JPEG, BMP, WebP
    DICOM = "dicom"
    OPENSLIDE_OTHER = "openslide-other"  # MIRAX, Hamamatsu VMS/VMU, Sakura SVSlide


def _read_header(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(_HEADER_BYTES)


def check_file(path: Path) -> FileKind:
    """Raise the precise :class:`SlideError` for an unusable path, or say what the file is.

    Order matters: existence, folder, permission, emptiness, then content.
    """
    if not path.exists():
        hint = " (the link points nowhere)" if path.is_symlink() else ""
        raise SlideNotFoundError(
            path, f"no such file{hint}; check the path, or whether it was moved or renamed"
        )
    if path.is_dir():
        raise SlideIsDirectoryError(
            path,
            "this is a folder, not a slide file; for MIRAX choose the .mrxs file beside the "
            "folder, for DICOM choose one .dcm file inside it",
        )
    if not path.is_file():
        raise UnsupportedFormatError(path, "this is not a regular file (a device or a pipe)")
    try:
        header = _read_header(path)
    except PermissionError:
        raise SlidePermissionError(
            path, "you do not have permission to read this file; ask its owner or copy it"
        ) from None
    except OSError as exc:
        raise CorruptSlideError(path, f"the file could not be read ({exc.strerror})") from exc
    if path.stat().st_size == 0 or not header:
        raise SlideEmptyError(
            path, "the file is empty (0 bytes); the copy or download probably failed"
        )
    return classify(path, header)


def classify(path: Path, header: bytes) -> FileKind:
    """Decide the reader from magic bytes first and the extension second."""
    suffix = path.suffix.lower()
    if header[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        _check_tiff_structure(path, header)
        return FileKind.TIFF
    if header[:8] == b"\x89PNG\r\n\x1a\n" or header[:3] == b"\xff\xd8\xff":
        return FileKind.PLAIN_IMAGE
    if header[:2] == b"BM" and suffix == ".bmp":
        return FileKind.PLAIN_IMAGE
    if header[:4] == b"RIFF" and header[8:12] == b"WEBP":
        return FileKind.PLAIN_IMAGE
    if header[128:132] == b"DICM":
        return FileKind.DICOM
    if suffix in {".mrxs", ".vms", ".vmu"} or header.startswith(b"SQLite format 3"):
        return FileKind.OPENSLIDE_OTHER
    raise UnsupportedFormatError(
        path, f"not a slide or image format SlideLens reads ({_describe(header, suffix)})"
    )


def _describe(header: bytes, suffix: str) -> str:
    """A short guess of what an unsupported file is, for the message."""
    known = {
        b"%PDF": "it is a PDF document",
        b"PK\x03\x04": "it is a ZIP archive; unpack it first",
        b"\x1f\x8b": "it is a gzip archive; unpack it first",
        b"GIF8": "it is a GIF image, which is not supported; convert it to PNG",
        b"ZISRAWFILE": "it is a Zeiss CZI file, which OpenSlide does not read",
    }
    for magic, text in known.items():
        if header.startswith(magic):
            return text
    if header and all(32 <= b < 127 or b in (9, 10, 13) for b in header[:64]):
        return "it contains text, not image data"
    if suffix in OPENSLIDE_EXTENSIONS | PLAIN_IMAGE_EXTENSIONS:
        return f"it is named {suffix} but its content is not; the file may be damaged"
    return "unknown content"


def _check_tiff_structure(path: Path, header: bytes) -> None:
    """Reject a TIFF whose first image directory lies beyond the end of the file."""
    size = path.stat().st_size
    order = "<" if header[:2] == b"II" else ">"
    is_bigtiff = header[2:4] in (b"+\x00", b"\x00+")
    try:
        if is_bigtiff:
            (offset,) = struct.unpack(order + "Q", header[8:16])
        else:
            (offset,) = struct.unpack(order + "I", header[4:8])
    except struct.error:
        raise CorruptSlideError(path, "the file is truncated inside its TIFF header") from None
    if offset < 8 or offset >= size:
        raise CorruptSlideError(
            path,
            f"the file is truncated or damaged: its first image directory is at byte {offset} "
            f"but the file has only {size} bytes; copy the file again",
        )


def is_readable(path: Path) -> bool:
    """Whether this process may read ``path`` (used for friendlier messages only)."""
    return os.access(path, os.R_OK)

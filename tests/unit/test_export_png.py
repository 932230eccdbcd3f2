"""The streaming PNG encoder: chunk structure, CRCs, pHYs, text, and exact pixels."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from viewer.export.png_stream import (
    PNG_SIGNATURE,
    PngStreamWriter,
    pixels_per_metre,
    png_chunk,
)


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """``(type, data)`` of every chunk, checking each CRC on the way."""
    assert data[:8] == PNG_SIGNATURE
    pos, out = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, f"bad CRC in {kind!r}"
        out.append((kind, body))
        pos += 12 + length
    return out


def _encode(image: np.ndarray, bands: list[int], **options: object) -> bytes:
    buffer = io.BytesIO()
    writer = PngStreamWriter(buffer, image.shape[1], image.shape[0], **options)  # type: ignore[arg-type]
    row = 0
    for n in bands:
        writer.write_rows(image[row : row + n])
        row += n
    writer.close()
    return buffer.getvalue()


def test_streamed_bands_decode_to_exactly_the_pixels() -> None:
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (301, 517, 3), dtype=np.uint8)
    image[100:200] = image[99]  # repeated rows: "Up" filtering gives zeros there
    data = _encode(image, [1, 7, 150, 0, 143], idat_bytes=4096)
    with Image.open(io.BytesIO(data)) as decoded:
        assert decoded.mode == "RGB" and decoded.size == (517, 301)
        assert np.array_equal(np.asarray(decoded), image)
    kinds = [kind for kind, _ in _chunks(data)]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    assert kinds.count(b"IDAT") > 10  # split at idat_bytes, consecutive
    first, last = kinds.index(b"IDAT"), len(kinds) - 1 - kinds[::-1].index(b"IDAT")
    assert set(kinds[first : last + 1]) == {b"IDAT"}


def test_header_physical_size_and_text() -> None:
    image = np.zeros((3, 4, 3), np.uint8)
    ppm = pixels_per_metre(0.25)
    assert ppm == 4_000_000
    text = {"Software": "SlideLens", "Note": "≤ 2 µm"}  # "≤" is not Latin-1: iTXt
    data = _encode(image, [3], pixels_per_metre=ppm, text=text)
    chunks = dict(_chunks(data))
    assert struct.unpack(">IIBBBBB", chunks[b"IHDR"]) == (4, 3, 8, 2, 0, 0, 0)
    assert struct.unpack(">IIB", chunks[b"pHYs"]) == (4_000_000, 4_000_000, 1)
    assert chunks[b"tEXt"] == b"Software\0SlideLens"
    assert chunks[b"iTXt"] == b"Note\0\0\0\0\0" + "≤ 2 µm".encode()
    with Image.open(io.BytesIO(data)) as decoded:
        assert decoded.info["dpi"][0] == pytest.approx(25400 / 0.25)
        assert decoded.info["Software"] == "SlideLens"
        assert decoded.info["Note"] == "≤ 2 µm"


def test_chunk_layout() -> None:
    chunk = png_chunk(b"IEND", b"")
    assert chunk == b"\0\0\0\0IEND\xaeB`\x82"  # the well-known IEND bytes
    with pytest.raises(ValueError):
        png_chunk(b"IDA", b"")


def test_wrong_rows_are_refused() -> None:
    writer = PngStreamWriter(io.BytesIO(), 4, 3)
    with pytest.raises(ValueError, match="uint8"):
        writer.write_rows(np.zeros((1, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(n, 4, 3\)"):
        writer.write_rows(np.zeros((1, 5, 3), np.uint8))
    writer.write_rows(np.zeros((2, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="more than 3 rows"):
        writer.write_rows(np.zeros((2, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="2 of 3 rows"):
        writer.close()
    with pytest.raises(ValueError):
        PngStreamWriter(io.BytesIO(), 0, 3)

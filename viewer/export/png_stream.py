"""A streaming PNG encoder: 8-bit RGB written band by band, never holding the whole image.

The file is a PNG signature, ``IHDR``, optional ``pHYs`` (physical pixel size, pixels per
metre) and text chunks, ``IDAT`` chunks of zlib data, and ``IEND``; every chunk carries
its CRC-32 (PNG specification, 3rd edition, section 5).  Each row is filtered with
"Up" (filter type 2: the byte above is subtracted), which costs one subtraction and
compresses tissue images better than no filter; the previous band's last row is kept
for the next band's first row.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from types import TracebackType
from typing import BinaryIO

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Largest width or height the PNG format allows.
MAX_PNG_SIDE = 2**31 - 1
_FILTER_UP = 2
_DEFAULT_IDAT_BYTES = 1 << 20
_FILTER_BYTES = 1 << 20


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One chunk: length, type, data, CRC-32 of type and data (all big-endian)."""
    if len(kind) != 4:
        raise ValueError(f"a chunk type has 4 letters, not {kind!r}")
    crc = zlib.crc32(data, zlib.crc32(kind)) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def pixels_per_metre(um_per_px: float) -> int:
    """The ``pHYs`` value for a pixel ``um_per_px`` microns wide."""
    if not um_per_px > 0:
        raise ValueError(f"um_per_px must be positive, not {um_per_px}")
    return max(1, min(2**31 - 1, round(1e6 / um_per_px)))


def _text_chunk(keyword: str, text: str) -> bytes:
    """``tEXt`` when the text is Latin-1, else ``iTXt`` (UTF-8, uncompressed)."""
    key = keyword.encode("latin-1")
    if not 1 <= len(key) <= 79 or b"\0" in key:
        raise ValueError(f"a PNG text keyword has 1-79 Latin-1 characters, not {keyword!r}")
    try:
        return png_chunk(b"tEXt", key + b"\0" + text.encode("latin-1"))
    except UnicodeEncodeError:
        return png_chunk(b"iTXt", key + b"\0\0\0\0\0" + text.encode("utf-8"))


class PngStreamWriter:
    """Writes a ``width x height`` 8-bit RGB PNG to ``fh`` in bands of rows.

    Call :meth:`write_rows` with ``(n, width, 3)`` uint8 arrays top to bottom, then
    :meth:`close` (or use it as a context manager), which raises :class:`ValueError`
    unless exactly ``height`` rows arrived.  ``pixels_per_metre`` writes ``pHYs``;
    ``text`` adds one text chunk per item.  Memory is one band plus zlib's window.
    """

    def __init__(
        self,
        fh: BinaryIO,
        width: int,
        height: int,
        *,
        pixels_per_metre: int | None = None,
        text: Mapping[str, str] | None = None,
        level: int = 6,
        idat_bytes: int = _DEFAULT_IDAT_BYTES,
    ) -> None:
        if not (1 <= width <= MAX_PNG_SIDE and 1 <= height <= MAX_PNG_SIDE):
            raise ValueError(f"a PNG is 1 .. {MAX_PNG_SIDE} px per side, not {width} x {height}")
        self._fh = fh
        self.width, self.height = width, height
        self.rows_written = 0
        self._prev = np.zeros(width * 3, np.uint8)  # the row above the first is all zero
        self._zip = zlib.compressobj(level)
        self._pending = bytearray()
        self._idat_bytes = max(1024, idat_bytes)
        self._closed = False
        # IHDR: width, height, bit depth 8, colour type 2 (RGB), deflate, adaptive
        # filtering, no interlace
        header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
        fh.write(PNG_SIGNATURE + png_chunk(b"IHDR", header))
        if pixels_per_metre is not None:
            ppm = int(pixels_per_metre)
            fh.write(png_chunk(b"pHYs", struct.pack(">IIB", ppm, ppm, 1)))
        for keyword, value in (text or {}).items():
            fh.write(_text_chunk(keyword, value))

    def __enter__(self) -> PngStreamWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()

    def write_rows(self, rows: np.ndarray) -> None:
        """Append ``(n, width, 3)`` uint8 rows below those written so far."""
        if self._closed:
            raise ValueError("the PNG is already closed")
        if rows.dtype != np.uint8 or rows.ndim != 3 or rows.shape[1:] != (self.width, 3):
            raise ValueError(
                f"rows must be (n, {self.width}, 3) uint8, not {rows.shape} {rows.dtype}"
            )
        n = rows.shape[0]
        if self.rows_written + n > self.height:
            raise ValueError(f"more than {self.height} rows written")
        if n == 0:
            return
        flat = np.ascontiguousarray(rows).reshape(n, self.width * 3)
        # filter a few rows at a time: memory for filtering stays about _FILTER_BYTES
        step = max(1, _FILTER_BYTES // (1 + self.width * 3))
        filtered = np.empty((min(step, n), 1 + self.width * 3), np.uint8)
        filtered[:, 0] = _FILTER_UP
        for r0 in range(0, n, step):
            r1 = min(n, r0 + step)
            out = filtered[: r1 - r0]
            above = self._prev if r0 == 0 else flat[r0 - 1]
            np.subtract(flat[r0], above, out=out[0, 1:])  # wraps modulo 256
            np.subtract(flat[r0 + 1 : r1], flat[r0 : r1 - 1], out=out[1:, 1:])
            self._pending += self._zip.compress(out.data)
            self._flush_idat(final=False)
        self._prev = flat[-1].copy()
        self.rows_written += n

    def _flush_idat(self, final: bool) -> None:
        while len(self._pending) >= self._idat_bytes or (final and self._pending):
            size = min(len(self._pending), self._idat_bytes) if not final else len(self._pending)
            self._fh.write(png_chunk(b"IDAT", bytes(self._pending[:size])))
            del self._pending[:size]

    def close(self) -> None:
        """Finish the zlib stream and write ``IEND``; :class:`ValueError` if rows are missing."""
        if self._closed:
            return
        if self.rows_written != self.height:
            raise ValueError(f"{self.rows_written} of {self.height} rows were written")
        self._pending += self._zip.flush()
        self._flush_idat(final=True)
        self._fh.write(png_chunk(b"IEND", b""))
        self._closed = True

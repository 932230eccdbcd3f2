"""open_slide: what it reads, and a precise SlideError for every bad input."""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from inference.slides import (
    CorruptSlideError,
    SlideClosedError,
    SlideEmptyError,
    SlideError,
    SlideIsDirectoryError,
    SlideNotFoundError,
    SlidePermissionError,
    SlideSource,
    SlideTooLargeError,
    UnsupportedCompressionError,
    UnsupportedFormatError,
    open_slide,
    preflight,
)


def _gradient(width: int, height: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x % 256, y % 256, (x + y) % 256], axis=-1).astype(np.uint8)


@pytest.fixture
def png_slide(tmp_path: Path) -> Path:
    path = tmp_path / "patch.png"
    Image.fromarray(_gradient(3000, 2200)).save(path)
    return path


@pytest.fixture
def tiled_tiff(tmp_path: Path) -> Path:
    """A lossless tiled 2-level pyramid that OpenSlide reads as generic-tiff."""
    path = tmp_path / "lossless.tiff"
    base = _gradient(1024, 768)
    with tifffile.TiffWriter(path) as tif:
        for level, data in enumerate([base, base[::2, ::2]]):
            tif.write(
                np.ascontiguousarray(data),
                tile=(256, 256),
                photometric="rgb",
                compression="zlib",
                subfiletype=1 if level else 0,
                resolution=(1e4 / (0.25 * 2**level), 1e4 / (0.25 * 2**level)),
                resolutionunit="CENTIMETER",
            )
    return path


# -- the SlideSource contract, for both implementations --------------------------------


@pytest.fixture(params=["plain-png", "openslide-tiff"])
def any_source(
    request: pytest.FixtureRequest, png_slide: Path, tiled_tiff: Path
) -> Iterator[SlideSource]:
    source = open_slide(png_slide if request.param == "plain-png" else tiled_tiff)
    yield source
    source.close()


def test_read_region_contract(any_source: SlideSource) -> None:
    info = any_source.info
    region = any_source.read_region(0, 10, 20, 64, 48)
    assert region.shape == (48, 64, 3) and region.dtype == np.uint8
    expected = _gradient(info.dimensions[0], info.dimensions[1])[20:68, 10:74]
    np.testing.assert_array_equal(region, expected)
    # outside the image is white
    l0_w, l0_h = info.dimensions
    edge = any_source.read_region(0, l0_w - 8, l0_h - 8, 16, 16)
    assert (edge[8:, :] == 255).all() and (edge[:, 8:] == 255).all()
    assert info.level_count >= 2
    for level, (lv_w, _lv_h) in enumerate(info.level_dimensions):
        assert abs(lv_w * info.level_downsamples[level] - l0_w) <= info.level_downsamples[level]
        assert any_source.read_region(level, 0, 0, 8, 8).shape == (8, 8, 3)
    thumb = any_source.thumbnail(256)
    assert max(thumb.shape[:2]) == 256


def test_close_waits_for_readers_and_refuses_later_reads(any_source: SlideSource) -> None:
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                any_source.read_region(0, 0, 0, 128, 128)
            except SlideClosedError:
                return
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    any_source.close()
    stop.set()
    for thread in threads:
        thread.join(5)
    assert errors == []
    with pytest.raises(SlideClosedError):
        any_source.read_region(0, 0, 0, 4, 4)


def test_source_id_is_stable_content_fingerprint(tiled_tiff: Path, tmp_path: Path) -> None:
    copy = tmp_path / "moved" / "renamed.tiff"
    copy.parent.mkdir()
    copy.write_bytes(tiled_tiff.read_bytes())
    a, b = open_slide(tiled_tiff), open_slide(copy)
    try:
        assert a.info.source_id == b.info.source_id
    finally:
        a.close()
        b.close()


def test_generic_tiff_metadata(tiled_tiff: Path) -> None:
    source = open_slide(tiled_tiff)
    try:
        assert source.info.vendor == "generic-tiff"
        assert source.info.mpp == pytest.approx(0.25, rel=1e-3)
        assert source.info.level_downsamples == pytest.approx((1.0, 2.0))
    finally:
        source.close()


def test_plain_image_alpha_is_flattened_onto_white(tmp_path: Path) -> None:
    rgba = np.zeros((40, 50, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, 25:, 3] = 255  # left half fully transparent
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    source = open_slide(path)
    try:
        region = source.read_region(0, 0, 0, 50, 40)
        assert (region[:, :25] == 255).all()
        assert (region[:, 25:] == (200, 0, 0)).all()
        assert source.info.mpp is None
    finally:
        source.close()


def test_real_aperio_slide(aperio_slide: Path) -> None:
    source = open_slide(aperio_slide)
    try:
        info = source.info
        assert info.vendor == "aperio"
        assert info.dimensions == (2220, 2967)
        assert info.mpp == pytest.approx(0.499)
        assert info.objective_power == 20
        assert set(info.associated_images) >= {"label", "macro", "thumbnail"}
        tile = source.read_region(0, 1000, 1000, 256, 256)
        assert tile.shape == (256, 256, 3)
        assert tile.std() > 5  # tissue, not a blank
        label = source.associated_image("label")
        assert label.ndim == 3 and label.shape[2] == 3
    finally:
        source.close()


# -- every bad input has its own error, naming the file ---------------------------------


def _png_header_claiming(path: Path, width: int, height: int) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SlideNotFoundError, match="no such file") as info:
        open_slide(tmp_path / "gone.svs")
    assert "gone.svs" in str(info.value)


def test_directory(tmp_path: Path) -> None:
    folder = tmp_path / "scan.svs"
    folder.mkdir()
    with pytest.raises(SlideIsDirectoryError, match="folder") as info:
        open_slide(folder)
    assert "scan.svs" in str(info.value)


def test_no_read_permission(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "locked.svs"
    path.write_bytes(b"II*\x00" + b"\x00" * 100)
    path.chmod(0)
    if os.geteuid() == 0:
        # root reads any file: make the read fail as it does for an ordinary user
        def refuse(_: Path) -> bytes:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(preflight, "_read_header", refuse)
    with pytest.raises(SlidePermissionError, match="permission") as info:
        open_slide(path)
    assert "locked.svs" in str(info.value)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.ndpi"
    path.touch()
    with pytest.raises(SlideEmptyError, match="empty") as info:
        open_slide(path)
    assert "empty.ndpi" in str(info.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"just some notes about the case\n", "text"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + b"\x00" * 40, "PDF"),
        (b"PK\x03\x04" + b"\x00" * 60, "ZIP"),
    ],
)
def test_not_a_slide_format(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "report.svs"
    path.write_bytes(content)
    with pytest.raises(UnsupportedFormatError, match=expected) as info:
        open_slide(path)
    assert "report.svs" in str(info.value)


def test_unsupported_compression(tmp_path: Path) -> None:
    path = tmp_path / "webp.tiff"
    tifffile.imwrite(
        path, _gradient(512, 512), tile=(256, 256), photometric="rgb", compression="webp"
    )
    with pytest.raises(UnsupportedCompressionError, match="WEBP") as info:
        open_slide(path)
    assert "webp.tiff" in str(info.value)


def test_truncated_tiff_header(tiled_tiff: Path, tmp_path: Path) -> None:
    data = tiled_tiff.read_bytes()
    path = tmp_path / "cut.tiff"
    # keep the header but point past the end: the first directory is gone
    path.write_bytes(data[:4] + struct.pack("<I", len(data) * 2) + data[8:200])
    with pytest.raises(CorruptSlideError, match="truncated") as info:
        open_slide(path)
    assert "cut.tiff" in str(info.value)


def test_truncated_tile_data(tmp_path: Path) -> None:
    """Directories intact, tile bytes gone: damaged data is found on open, not on screen."""
    path = tmp_path / "damaged.tiff"
    base = np.random.default_rng(0).integers(0, 255, (1024, 1024, 3), dtype=np.uint8)
    with tifffile.TiffWriter(path) as tif:
        tif.write(base, tile=(256, 256), photometric="rgb", compression="jpeg")
        tif.write(
            base[::2, ::2].copy(),
            tile=(256, 256),
            photometric="rgb",
            compression="jpeg",
            subfiletype=1,
        )
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[1]
        offsets, counts = page.dataoffsets, page.databytecounts  # type: ignore[union-attr]
    raw = bytearray(path.read_bytes())
    for offset, count in zip(offsets, counts, strict=True):
        raw[offset : offset + count] = b"\x00" * count
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptSlideError, match="damaged") as info:
        open_slide(path)
    assert "damaged.tiff" in str(info.value)


def test_dimensions_too_large_to_be_honest(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    _png_header_claiming(path, 200_000, 150_000)
    with pytest.raises(SlideTooLargeError, match="too large") as info:
        open_slide(path)
    assert "huge.png" in str(info.value)


def test_every_error_is_a_slide_error() -> None:
    for cls in (
        SlideNotFoundError,
        SlideIsDirectoryError,
        SlidePermissionError,
        SlideEmptyError,
        UnsupportedFormatError,
        UnsupportedCompressionError,
        CorruptSlideError,
        SlideTooLargeError,
    ):
        assert issubclass(cls, SlideError)


def test_bgrx_equals_rgb_read(any_source: SlideSource) -> None:
    """The display path returns the same pixels as read_region, including white outside."""
    l0_w, l0_h = any_source.info.dimensions
    for level, x, y in [(0, 10, 20), (0, l0_w - 30, l0_h - 30), (1, 0, 0)]:
        rgb = any_source.read_region(level, x, y, 64, 48)
        bgrx = any_source.read_region_bgrx(level, x, y, 64, 48)
        assert bgrx.shape == (48, 64, 4)
        np.testing.assert_array_equal(bgrx[..., 2::-1], rgb)
        assert (bgrx[..., 3] == 255).all()

"""Slide sources: one protocol over OpenSlide slides and plain images, and ``open_slide``."""

from inference.slides.base import SlideInfo, SlideSource, content_fingerprint
from inference.slides.errors import (
    CorruptSlideError,
    SlideClosedError,
    SlideEmptyError,
    SlideError,
    SlideIsDirectoryError,
    SlideNotFoundError,
    SlidePermissionError,
    SlideTooLargeError,
    TileReadError,
    UnsupportedCompressionError,
    UnsupportedFormatError,
)
from inference.slides.opening import open_slide

__all__ = [
    "CorruptSlideError",
    "SlideClosedError",
    "SlideEmptyError",
    "SlideError",
    "SlideInfo",
    "SlideIsDirectoryError",
    "SlideNotFoundError",
    "SlidePermissionError",
    "SlideSource",
    "SlideTooLargeError",
    "TileReadError",
    "UnsupportedCompressionError",
    "UnsupportedFormatError",
    "content_fingerprint",
    "open_slide",
]

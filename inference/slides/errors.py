"""The one family of exceptions that opening or reading a slide can raise.

Every message names the file and says, in words a person understands, what is
wrong and what to do.  Callers catch :class:`SlideError` and show ``str(exc)``.
"""

from __future__ import annotations

from pathlib import Path


class SlideError(Exception):
    """Base class: a slide could not be opened or read.

    ``path`` is the file concerned; ``cause`` is the short reason without the path.
    """

    def __init__(self, path: str | Path, cause: str) -> None:
        self.path = Path(path)
        self.cause = cause
        super().__init__(f"{self.path.name}: {cause}  [{self.path}]")


class SlideNotFoundError(SlideError):
    """The path does not exist."""


class SlideIsDirectoryError(SlideError):
    """The path is a directory, not a slide file."""


class SlidePermissionError(SlideError):
    """The file exists but this user may not read it."""


class SlideEmptyError(SlideError):
    """The file has zero bytes."""


class UnsupportedFormatError(SlideError):
    """The file is not an image or slide format SlideLens reads."""


class UnsupportedCompressionError(SlideError):
    """The container is known but its pixel compression is not supported."""


class CorruptSlideError(SlideError):
    """The file is truncated or its structure or tile data is damaged."""


class SlideTooLargeError(SlideError):
    """The file claims dimensions no real slide has, or too large to hold in memory."""


class TileReadError(SlideError):
    """One region of an otherwise open slide could not be decoded."""


class SlideClosedError(SlideError):
    """The slide was closed while a read was requested."""

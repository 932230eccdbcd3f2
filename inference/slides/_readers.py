"""Bookkeeping shared by slide sources: count reads in progress, let ``close`` wait for them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from inference.slides.errors import SlideClosedError


class ReaderGate:
    """Admits readers until closed; ``close`` blocks until every admitted reader has left.

    OpenSlide forbids closing a handle while another thread reads from it, so every read
    runs inside :meth:`reading` and :meth:`close` waits for the count to drop to zero.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._cond = threading.Condition()
        self._active = 0
        self._closed = False

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            if self._closed:
                raise SlideClosedError(self._path, "the slide was closed")
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                if self._active == 0:
                    self._cond.notify_all()

    def close(self, timeout: float | None = None) -> bool:
        """Refuse new readers and wait for current ones; ``False`` if ``timeout`` expired."""
        with self._cond:
            self._closed = True
            return self._cond.wait_for(lambda: self._active == 0, timeout)

    @property
    def closed(self) -> bool:
        return self._closed

"""Opens slides off the GUI thread: pre-flight, decode probe, thumbnail, associated images."""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from inference.slides import SlideError, SlideSource, open_slide
from viewer.qt.canvas.tile_bridge import rgb_to_qimage
from viewer.qt.inference_worker import SlideTag

log = logging.getLogger(__name__)

#: Longer side of the thumbnail used for the overview and as the last-resort fallback.
THUMBNAIL_SIDE = 1024

#: Numbers the openings of slides in this process (see :attr:`OpenedSlide.opening`).
_openings = itertools.count(1)


@dataclass
class OpenedSlide:
    """Everything the GUI needs to show a slide, read before it reaches the GUI thread.

    ``opening`` is unique to this opening of the file in this process, so work asked for
    it is told apart from work asked for an earlier opening of the same slide.
    """

    path: Path
    source: SlideSource
    thumbnail: QImage | None
    associated: dict[str, QImage] = field(default_factory=dict)
    opening: int = field(default_factory=lambda: next(_openings))

    @property
    def tag(self) -> SlideTag:
        """What every task and payload made for this opened slide carries."""
        return SlideTag(self.source.info.source_id, self.opening)


class SlideOpener(QObject):
    """``open(path)`` returns at once; ``opened`` or ``failed`` arrives on the GUI thread.

    A newer ``open`` supersedes an older one still running: the older result is
    closed and dropped, so double-clicking two files quickly shows the second.
    """

    opened = Signal(object)  # OpenedSlide
    failed = Signal(str, str)  # path, message

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._generation = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def open(self, path: str | Path) -> None:
        with self._lock:
            self._generation += 1
            generation = self._generation
        thread = threading.Thread(
            target=self._work, args=(Path(path), generation), name="slidelens-opener", daemon=True
        )
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def wait(self, timeout: float = 30.0) -> None:
        """Join opener threads (for tests and shutdown)."""
        for thread in list(self._threads):
            thread.join(timeout)

    def _work(self, path: Path, generation: int) -> None:
        try:
            source = open_slide(path)
        except SlideError as exc:
            self.failed.emit(str(path), str(exc))
            return
        except Exception as exc:  # a bug or an unexpected library error: still a message
            log.exception("opening %s failed", path)
            self.failed.emit(str(path), f"{path.name}: could not be opened ({exc})  [{path}]")
            return
        try:
            opened = OpenedSlide(path, source, _thumbnail(source))
            for name in source.info.associated_images:
                try:
                    opened.associated[name] = rgb_to_qimage(source.associated_image(name))
                except (SlideError, KeyError) as exc:
                    log.warning("%s: associated image %s unreadable: %s", path.name, name, exc)
        except Exception as exc:
            source.close()
            self.failed.emit(str(path), f"{path.name}: could not be read ({exc})  [{path}]")
            return
        with self._lock:
            current = generation == self._generation
        if not current:
            source.close()
            return
        self.opened.emit(opened)


def _thumbnail(source: SlideSource) -> QImage | None:
    try:
        return rgb_to_qimage(source.thumbnail(THUMBNAIL_SIDE))
    except (SlideError, ValueError) as exc:
        log.warning("%s: no thumbnail: %s", source.info.path.name, exc)
        return None

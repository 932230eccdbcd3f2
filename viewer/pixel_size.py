"""The pixel size of the open slide: the one the slide states, else one the user typed.

Some slides state no pixel size (plain PNG/JPEG patches, TIFFs without resolution
tags).  Measurements, the scale bar, model jobs (a model's patch size is in µm) and
explanations need one, so the user is asked once per slide and the answer is kept:

* :class:`TypedPixelSizes` remembers typed sizes between sessions, keyed by the slide's
  ``SlideInfo.source_id`` (a content fingerprint: the same file anywhere, or a copy of
  it, keeps its size), in a small JSON file in the user data folder.  A damaged file
  gives a clear message and an empty store; it is kept aside, never silently lost.
* :class:`SlidePixelSize` is the one place that knows the *effective* pixel size of the
  open slide: the slide's own when it states one, else the typed one, else ``None``.
  Its ``changed(mpp)`` event fires when that value may have changed (another slide, a
  size typed or changed), and the scale bar, measurements, jobs, explanations and
  figure export read it.

Qt-free; used on the GUI thread only.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from psygnal import Signal

from inference.core.paths import user_data_dir
from viewer.slide_keyed_file import SlideKeyedFile

if TYPE_CHECKING:
    from inference.slides import SlideInfo

log = logging.getLogger(__name__)

#: The file in the user data folder that keeps typed pixel sizes.
STORE_FILE_NAME = "typed-pixel-sizes.json"
#: The format of that file.
STORE_VERSION = 1
#: Typed pixel sizes outside this range (µm per level-0 pixel) are refused.
MIN_TYPED_MPP = 0.01
MAX_TYPED_MPP = 100.0

MppSource = Literal["slide", "typed"]


def check_typed_mpp(value: object) -> float:
    """``value`` as a pixel size in µm/px; :class:`ValueError` (saying why) unless it is a
    finite number from :data:`MIN_TYPED_MPP` to :data:`MAX_TYPED_MPP`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"a pixel size must be a number of µm per pixel, not {value!r}")
    mpp = float(value)
    if not (math.isfinite(mpp) and MIN_TYPED_MPP <= mpp <= MAX_TYPED_MPP):
        raise ValueError(
            f"a pixel size must be from {MIN_TYPED_MPP:g} to {MAX_TYPED_MPP:g} µm per pixel, "
            f"not {value!r}"
        )
    return mpp


class TypedPixelSizes:
    """Pixel sizes the user typed, by slide ``source_id``, kept in a JSON file.

    The file is ``{"version": 1, "slides": {source_id: {"mpp": 0.5, "file": "a.png",
    "typed": "2024-05-01T10:00:00"}}}``; ``file`` and ``typed`` are for people reading
    it.  It is read once, at construction, and rewritten atomically on every change.

    ``problem`` holds a message naming the file and the cause when it could not be read
    (the store then starts empty, and the damaged file is renamed ``<name>.damaged``
    before the first new size is written) or written (the size is kept for this
    session only); ``None`` when all is well.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else user_data_dir() / STORE_FILE_NAME
        self._file = SlideKeyedFile(
            self.path,
            STORE_VERSION,
            contents="the remembered pixel sizes",
            kind="pixel-size",
            unsaved="the pixel size could not be saved ({cause}); it holds until SlideLens closes",
            kept_when=" when a new size is saved",
            indent=2,
        )
        self._entries: dict[str, dict[str, Any]] = self._checked(self._file.load())

    @property
    def problem(self) -> str | None:
        """What went wrong reading or writing the file, naming it; ``None`` when fine."""
        return self._file.problem

    def _checked(self, slides: dict[Any, Any]) -> dict[str, dict[str, Any]]:
        """The usable entries; unusable ones are dropped and ``problem`` says so."""
        entries: dict[str, dict[str, Any]] = {}
        skipped: list[str] = []
        for source_id, entry in slides.items():
            try:
                mpp = check_typed_mpp(entry.get("mpp") if isinstance(entry, dict) else entry)
            except ValueError as exc:
                skipped.append(f"{source_id}: {exc}")
                continue
            entries[str(source_id)] = {**(entry if isinstance(entry, dict) else {}), "mpp": mpp}
        if skipped:
            self._file.problem = (
                f"{self.path}: ignored {len(skipped)} unusable entries ({skipped[0]})"
            )
            log.warning("%s", self._file.problem)
        return entries

    def get(self, source_id: str) -> float | None:
        """The size typed for the slide with this ``source_id``, or ``None``."""
        entry = self._entries.get(source_id)
        return float(entry["mpp"]) if entry is not None else None

    def __len__(self) -> int:
        return len(self._entries)

    def set(self, source_id: str, mpp: float | None, file_name: str = "") -> None:
        """Remember ``mpp`` for the slide (``None``: forget it) and save.

        :class:`ValueError` for an impossible size.  A failure to save is not raised:
        the size holds for this session and ``problem`` says why it was not saved.
        """
        if mpp is None:
            if self._entries.pop(source_id, None) is None:
                return
        else:
            self._entries[source_id] = {
                "mpp": check_typed_mpp(mpp),
                "file": file_name,
                "typed": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
        self._save()

    def _save(self) -> None:
        self._file.save(self._entries)


class SlidePixelSize:
    """The effective pixel size of the open slide (see the module docstring).

    ``changed(mpp)`` is emitted with the new effective value (``float`` or ``None``)
    whenever another slide is set or the typed size changes.
    """

    changed = Signal(object)

    def __init__(self, store: TypedPixelSizes | None = None) -> None:
        self.store = store if store is not None else TypedPixelSizes()
        self._info: SlideInfo | None = None

    @property
    def info(self) -> SlideInfo | None:
        """The open slide's info (``None`` without a slide)."""
        return self._info

    def set_slide(self, info: SlideInfo | None) -> None:
        """Another slide (or none) is open; emits ``changed``."""
        self._info = info
        self.changed.emit(self.mpp)

    @property
    def stated(self) -> float | None:
        """The pixel size the slide itself states."""
        return self._info.mpp if self._info is not None else None

    @property
    def typed(self) -> float | None:
        """The pixel size the user typed for the open slide (``None``: none typed)."""
        if self._info is None:
            return None
        return self.store.get(self._info.source_id)

    @property
    def mpp(self) -> float | None:
        """µm per level-0 pixel of the open slide: stated, else typed, else ``None``."""
        stated = self.stated
        return stated if stated else self.typed

    @property
    def source(self) -> MppSource | None:
        """Where :attr:`mpp` comes from: ``"slide"``, ``"typed"``, or ``None`` (unknown)."""
        if self.stated:
            return "slide"
        return "typed" if self.typed is not None else None

    def set_typed(self, mpp: float | None) -> None:
        """Remember ``mpp`` as the open slide's pixel size (``None``: forget it) and emit
        ``changed``.  :class:`ValueError` for an impossible size, or when no slide is
        open or the slide states its own size (which always wins)."""
        info = self._info
        if info is None:
            raise ValueError("no slide is open")
        if info.mpp:
            raise ValueError(
                f"{info.path.name} states its own pixel size ({info.mpp:g} µm/px); "
                "a typed one would not be used"
            )
        before = self.mpp
        self.store.set(info.source_id, mpp, info.path.name)
        if self.mpp != before:
            self.changed.emit(self.mpp)

    def require(self, ask: Callable[[SlideInfo], float | None]) -> float | None:
        """The effective pixel size; when unknown, ``ask(info)`` the user (once per slide:
        the answer is remembered).  ``None`` when no slide is open or the user cancelled
        (then the next call asks again)."""
        mpp = self.mpp
        if mpp is not None or self._info is None:
            return mpp
        answer = ask(self._info)
        if answer is None:
            return None
        self.set_typed(answer)
        return self.mpp

    def provenance(self) -> dict[str, Any]:
        """``{"mpp": ..., "mpp_source": "slide" | "typed" | None}`` for records."""
        return {"mpp": self.mpp, "mpp_source": self.source}

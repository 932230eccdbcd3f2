"""The selection of an annotation set: ids in the order they were selected (no undo)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

SelectMode = Literal["replace", "add", "toggle", "remove"]


class Selection:
    """Selected annotation ids, first selected first; knows nothing of the annotations
    (the set checks ids and fires its ``selection_changed``)."""

    def __init__(self) -> None:
        self._ids: dict[str, None] = {}  # a dict keeps selection order

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(self._ids)

    def __contains__(self, annotation_id: object) -> bool:
        return annotation_id in self._ids

    def apply(self, ids: Iterable[str], mode: SelectMode) -> None:
        """``replace`` the selection by ``ids``, ``add`` them, ``toggle`` or ``remove``
        them; :class:`ValueError` for another mode."""
        wanted = list(dict.fromkeys(ids))
        if mode == "replace":
            self._ids = dict.fromkeys(wanted)
        elif mode == "add":
            self._ids.update(dict.fromkeys(wanted))
        elif mode == "remove":
            for annotation_id in wanted:
                self._ids.pop(annotation_id, None)
        elif mode == "toggle":
            for annotation_id in wanted:
                if annotation_id in self._ids:
                    del self._ids[annotation_id]
                else:
                    self._ids[annotation_id] = None
        else:
            raise ValueError(f"unknown selection mode {mode!r}")

    def discard(self, annotation_id: str) -> bool:
        """Deselect one id; whether it was selected."""
        if annotation_id not in self._ids:
            return False
        del self._ids[annotation_id]
        return True

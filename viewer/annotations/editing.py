"""The undoable edits of an annotation set, each made one command on its undo stack.

:class:`AnnotationEditor` turns an edit (add, delete, move, reclassify...) into the
commands of :mod:`viewer.annotations.edit_commands` and pushes them; it is owned by an
:class:`~viewer.annotations.annotation_set.AnnotationSet`, which documents each edit.
No-op edits record nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from viewer.annotations.classes import AnnotationClass, ClassPalette, as_rgb
from viewer.annotations.edit_commands import EditTarget, Insert, Remove, Replace, Steps
from viewer.annotations.model import Annotation
from viewer.annotations.undo import Command, UndoStack


class EditHost(EditTarget, Protocol):
    """What the editor reads of its set (besides what commands change)."""

    def __len__(self) -> int: ...

    def __contains__(self, annotation_id: object) -> bool: ...

    def __iter__(self) -> Iterator[Annotation]: ...

    def get(self, annotation_id: str) -> Annotation: ...


def in_palette(palette: ClassPalette, annotation: Annotation) -> Annotation:
    """``annotation`` with the palette's class of its class name (a new class joins the
    palette), so one class has one colour."""
    cls = annotation.classification
    if cls is None:
        return annotation
    kept = palette.ensure(cls)
    return annotation if kept == cls else annotation.with_class(kept)


class AnnotationEditor:
    """Makes the edits of ``host`` undoable on ``history``."""

    def __init__(self, host: EditHost, history: UndoStack) -> None:
        self._host = host
        self._history = history

    def add_many(
        self, annotations: Iterable[Annotation], text: str, renew_duplicate_ids: bool
    ) -> list[Annotation]:
        host = self._host
        stored: list[Annotation] = []
        seen: set[str] = set()
        for annotation in annotations:
            if annotation.id in host or annotation.id in seen:
                if not renew_duplicate_ids:
                    raise ValueError(f"annotation {annotation.id} is already in the set")
                annotation = annotation.with_new_id()
            seen.add(annotation.id)
            stored.append(in_palette(host.palette, annotation))
        if stored:
            start = len(host)
            items = [(start + k, a) for k, a in enumerate(stored)]
            self._history.push(Insert(host, items, text))
        return stored

    def import_many(
        self, additions: Iterable[Annotation], replacements: Iterable[Annotation], text: str
    ) -> tuple[list[Annotation], list[Annotation]]:
        host = self._host
        pairs = []
        for annotation in replacements:
            old = host.get(annotation.id)
            new = in_palette(host.palette, annotation)
            if new != old:
                pairs.append((old, new))
        added: list[Annotation] = []
        seen: set[str] = set()
        for annotation in additions:
            if annotation.id in host or annotation.id in seen:
                raise ValueError(f"annotation {annotation.id} is already in the set")
            seen.add(annotation.id)
            added.append(in_palette(host.palette, annotation))
        steps: list[Command] = []
        if pairs:
            steps.append(Replace(host, pairs, text))
        if added:
            start = len(host)
            steps.append(Insert(host, [(start + k, a) for k, a in enumerate(added)], text))
        if steps:
            self._history.push(steps[0] if len(steps) == 1 else Steps(steps, text))
        return added, [new for _, new in pairs]

    def delete(self, ids: Iterable[str]) -> None:
        wanted = set(ids)
        for annotation_id in wanted:
            self._host.get(annotation_id)
        items = [(i, a) for i, a in enumerate(self._host) if a.id in wanted]
        if items:
            text = "Delete annotation" if len(items) == 1 else f"Delete {len(items)} annotations"
            self._history.push(Remove(self._host, items, text))

    def move(self, ids: Iterable[str], l0_dx: float, l0_dy: float, merge_key: object) -> None:
        if l0_dx == 0 and l0_dy == 0:
            return
        pairs = [(a, a.translated(l0_dx, l0_dy)) for a in self._values(ids)]
        if pairs:
            text = "Move annotation" if len(pairs) == 1 else f"Move {len(pairs)} annotations"
            self._history.push(Replace(self._host, pairs, text, merge_key=merge_key))

    def move_vertex(
        self,
        annotation_id: str,
        ring: int,
        index: int,
        l0_xy: Sequence[float],
        merge_key: object,
    ) -> None:
        old = self._host.get(annotation_id)
        new = old.with_vertex(ring, index, l0_xy)
        if new != old:
            self._push_replace(old, new, "Edit vertex", merge_key=merge_key)

    def set_class(self, ids: Iterable[str], classification: AnnotationClass | None) -> None:
        cls = None if classification is None else self._host.palette.ensure(classification)
        pairs = [(a, a.with_class(cls)) for a in self._values(ids) if a.classification != cls]
        if pairs:
            text = f"Set class {cls.name}" if cls is not None else "Remove class"
            self._history.push(Replace(self._host, pairs, text))

    def set_note(self, annotation_id: str, note: str) -> None:
        old = self._host.get(annotation_id)
        if old.note != note:
            self._push_replace(old, old.with_note(note), "Edit note")

    def set_name(self, annotation_id: str, name: str) -> None:
        old = self._host.get(annotation_id)
        if old.name != name:
            self._push_replace(old, old.with_name(name), "Rename")

    def replace(self, annotation: Annotation, text: str) -> None:
        old = self._host.get(annotation.id)
        new = in_palette(self._host.palette, annotation)
        if new != old:
            self._push_replace(old, new, text)

    def recolour_class(self, name: str, colour: Iterable[int]) -> None:
        old_cls = self._host.palette.get(name)
        if old_cls is None:
            raise KeyError(name)
        new_cls = AnnotationClass(name, as_rgb(colour))
        if new_cls == old_cls:
            return
        pairs = [(a, a.with_class(new_cls)) for a in self._host if a.classification == old_cls]
        command = Replace(
            self._host, pairs, f"Recolour class {name}", palette_change=(old_cls, new_cls)
        )
        self._history.push(command)

    def _push_replace(
        self, old: Annotation, new: Annotation, text: str, *, merge_key: object = None
    ) -> None:
        self._history.push(Replace(self._host, [(old, new)], text, merge_key=merge_key))

    def _values(self, ids: Iterable[str]) -> list[Annotation]:
        """Current values of ``ids`` in z-order; :class:`KeyError` for an unknown id."""
        wanted = set(ids)
        for annotation_id in wanted:
            self._host.get(annotation_id)
        return [a for a in self._host if a.id in wanted]

"""The undoable edits of an :class:`~viewer.annotations.annotation_set.AnnotationSet`.

Each command changes the set through the few primitives of :class:`EditTarget`
(insert at a position, remove, swap a value), which emit the set's events; the set
pushes commands on its :class:`~viewer.annotations.undo.UndoStack`.
"""

from __future__ import annotations

from typing import Protocol

from viewer.annotations.classes import AnnotationClass, ClassPalette
from viewer.annotations.model import Annotation, changed_parts
from viewer.annotations.undo import Command


class EditTarget(Protocol):
    """What commands change: an annotation set's palette and its content primitives."""

    palette: ClassPalette

    def _insert(self, index: int, annotation: Annotation) -> None: ...

    def _remove(self, annotation_id: str) -> None: ...

    def _replace(self, annotation: Annotation, what: str) -> None: ...


class Insert(Command):
    """Insert annotations at given final positions (ascending)."""

    def __init__(self, owner: EditTarget, items: list[tuple[int, Annotation]], text: str):
        self._owner, self._items, self.text = owner, items, text

    def redo(self) -> None:
        for index, annotation in self._items:
            self._owner._insert(index, annotation)

    def undo(self) -> None:
        for _, annotation in reversed(self._items):
            self._owner._remove(annotation.id)


class Remove(Command):
    """Remove annotations, remembering their positions (ascending) to put them back."""

    def __init__(self, owner: EditTarget, items: list[tuple[int, Annotation]], text: str):
        self._owner, self._items, self.text = owner, items, text

    def redo(self) -> None:
        for _, annotation in reversed(self._items):
            self._owner._remove(annotation.id)

    def undo(self) -> None:
        for index, annotation in self._items:
            self._owner._insert(index, annotation)


class Replace(Command):
    """Swap annotation values (same ids); optionally a palette colour with them.

    Commands with the same non-``None`` ``merge_key`` over the same ids merge, so one
    drag (many small moves) is one undo step.
    """

    def __init__(
        self,
        owner: EditTarget,
        pairs: list[tuple[Annotation, Annotation]],
        text: str,
        *,
        merge_key: object = None,
        palette_change: tuple[AnnotationClass, AnnotationClass] | None = None,
    ) -> None:
        self._owner, self._pairs, self.text = owner, pairs, text
        self._merge_key = merge_key
        self._palette_change = palette_change

    def redo(self) -> None:
        if self._palette_change is not None:
            cls = self._palette_change[1]
            self._owner.palette.set_colour(cls.name, cls.colour)
        for old, new in self._pairs:
            self._owner._replace(new, changed_parts(old, new))

    def undo(self) -> None:
        if self._palette_change is not None:
            cls = self._palette_change[0]
            self._owner.palette.set_colour(cls.name, cls.colour)
        for old, new in reversed(self._pairs):
            self._owner._replace(old, changed_parts(new, old))

    def merge(self, other: Command) -> bool:
        if (
            not isinstance(other, Replace)
            or self._merge_key is None
            or other._merge_key != self._merge_key
            or [old.id for old, _ in self._pairs] != [old.id for old, _ in other._pairs]
        ):
            return False
        pairs = zip(self._pairs, other._pairs, strict=True)
        self._pairs = [(old, new) for (old, _), (_, new) in pairs]
        return True


class Steps(Command):
    """Several commands as one step: done in order, undone in reverse order."""

    def __init__(self, commands: list[Command], text: str) -> None:
        self._commands, self.text = commands, text

    def redo(self) -> None:
        for command in self._commands:
            command.redo()

    def undo(self) -> None:
        for command in reversed(self._commands):
            command.undo()

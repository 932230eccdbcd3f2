"""The annotations of one slide: ordered values, events, selection, hit tests and undo.

:class:`AnnotationSet` lives on the GUI thread (like every model).  Every edit made
through its methods is one undoable step on its :class:`~viewer.annotations.undo.UndoStack`;
the events describe what actually changed, in order, whether by an edit, an undo or a
redo:

* ``added(annotation)`` and ``removed(annotation)`` (the value that was removed);
* ``changed(annotation, what)``: the new value, with ``what`` one of ``"geometry"``,
  ``"class"``, ``"note"``, ``"name"`` or ``"all"``;
* ``selection_changed(frozenset_of_ids)``;
* ``dirty_changed(bool)``: whether there are changes since the last explicit save
  (undoing back to the saved state makes the set clean again);
* ``history_changed()``: undo/redo availability or their texts may have changed.

Order is z-order: the first annotation is drawn first (at the bottom); new ones go on
top.  Undoing a deletion puts annotations back at their old places.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Literal

from psygnal import Signal

from viewer.annotations.measurements import Measurements, check_mpp, measure
from viewer.annotations.model import (
    Annotation,
    AnnotationClass,
    ClassPalette,
    VertexHit,
    as_rgb,
    changed_parts,
)
from viewer.annotations.undo import Command, UndoStack

SelectMode = Literal["replace", "add", "toggle", "remove"]


class _Insert(Command):
    """Insert annotations at given final positions (ascending)."""

    def __init__(self, owner: AnnotationSet, items: list[tuple[int, Annotation]], text: str):
        self._owner, self._items, self.text = owner, items, text

    def redo(self) -> None:
        for index, annotation in self._items:
            self._owner._insert(index, annotation)

    def undo(self) -> None:
        for _, annotation in reversed(self._items):
            self._owner._remove(annotation.id)


class _Remove(Command):
    """Remove annotations, remembering their positions (ascending) to put them back."""

    def __init__(self, owner: AnnotationSet, items: list[tuple[int, Annotation]], text: str):
        self._owner, self._items, self.text = owner, items, text

    def redo(self) -> None:
        for _, annotation in reversed(self._items):
            self._owner._remove(annotation.id)

    def undo(self) -> None:
        for index, annotation in self._items:
            self._owner._insert(index, annotation)


class _Replace(Command):
    """Swap annotation values (same ids); optionally a palette colour with them.

    Commands with the same non-``None`` ``merge_key`` over the same ids merge, so one
    drag (many small moves) is one undo step.
    """

    def __init__(
        self,
        owner: AnnotationSet,
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
            not isinstance(other, _Replace)
            or self._merge_key is None
            or other._merge_key != self._merge_key
            or [old.id for old, _ in self._pairs] != [old.id for old, _ in other._pairs]
        ):
            return False
        pairs = zip(self._pairs, other._pairs, strict=True)
        self._pairs = [(old, new) for (old, _), (_, new) in pairs]
        return True


class AnnotationSet:
    """The annotations of one slide (see the module docstring for events and order).

    ``source_id`` is the slide's content fingerprint (it names the file annotations are
    saved in); ``mpp`` its microns per level-0 pixel or ``None`` when unknown.
    Annotations given to the constructor are the starting state: clean, no history.
    """

    added = Signal(object)
    removed = Signal(object)
    changed = Signal(object, str)
    selection_changed = Signal(object)
    dirty_changed = Signal(bool)
    history_changed = Signal()

    def __init__(
        self,
        source_id: str = "",
        mpp: float | None = None,
        annotations: Iterable[Annotation] = (),
        *,
        palette: ClassPalette | None = None,
        dirty: bool = False,
        undo_limit: int = 500,
    ) -> None:
        self._source_id = source_id
        self._mpp = check_mpp(mpp)
        self.palette = palette if palette is not None else ClassPalette()
        self._order: list[str] = []
        self._items: dict[str, Annotation] = {}
        self._selection: dict[str, None] = {}  # a dict keeps selection order
        self._revision = 0
        for annotation in annotations:
            if annotation.id in self._items:
                raise ValueError(f"duplicate annotation id {annotation.id}")
            annotation = self._in_palette(annotation)
            self._order.append(annotation.id)
            self._items[annotation.id] = annotation
        self._history = UndoStack(undo_limit)
        if dirty:
            self._history.set_dirty()
        self._was_dirty = self.dirty
        self._history.changed.connect(self._on_history)

    def __repr__(self) -> str:
        return f"AnnotationSet({self._source_id!r}, {len(self)} annotations)"

    # -- reading -----------------------------------------------------------------------

    @property
    def source_id(self) -> str:
        return self._source_id

    @property
    def mpp(self) -> float | None:
        """Microns per level-0 pixel, ``None`` when the slide does not say."""
        return self._mpp

    @property
    def revision(self) -> int:
        """A counter bumped by every change of content (edits, undo, redo)."""
        return self._revision

    def __len__(self) -> int:
        return len(self._order)

    def __iter__(self) -> Iterator[Annotation]:
        """Annotations in z-order (bottom first), as they are now."""
        return iter(self.annotations())

    def __contains__(self, annotation_id: object) -> bool:
        return annotation_id in self._items

    def annotations(self) -> list[Annotation]:
        """All annotations in z-order (bottom first)."""
        return [self._items[i] for i in self._order]

    def ids(self) -> list[str]:
        return list(self._order)

    def get(self, annotation_id: str) -> Annotation:
        """The current value of an annotation; :class:`KeyError` if there is none."""
        return self._items[annotation_id]

    def find(self, annotation_id: str) -> Annotation | None:
        return self._items.get(annotation_id)

    def measure(self, annotation: Annotation | str) -> Measurements:
        """Measurements of an annotation (or id) with this slide's ``mpp``."""
        value = self.get(annotation) if isinstance(annotation, str) else annotation
        return measure(value, self._mpp)

    # -- editing (each call is one undo step; no-ops record nothing) -------------------

    def add(self, annotation: Annotation) -> Annotation:
        """Add on top.  Returns the value stored (its class is the palette's of that name)."""
        return self.add_many([annotation], text=f"Add {annotation.kind}")[0]

    def add_many(
        self,
        annotations: Iterable[Annotation],
        *,
        text: str = "Add annotations",
        renew_duplicate_ids: bool = False,
    ) -> list[Annotation]:
        """Add several annotations on top as one undo step (e.g. an import).

        Classes new to the palette are added to it; a class whose name the palette has
        is replaced by the palette's (so one class has one colour).  An id already in
        the set raises :class:`ValueError`, or gets a fresh id with
        ``renew_duplicate_ids``.  Returns the values stored, in order.
        """
        stored: list[Annotation] = []
        seen: set[str] = set()
        for annotation in annotations:
            if annotation.id in self._items or annotation.id in seen:
                if not renew_duplicate_ids:
                    raise ValueError(f"annotation {annotation.id} is already in the set")
                annotation = annotation.with_new_id()
            seen.add(annotation.id)
            stored.append(self._in_palette(annotation))
        if stored:
            start = len(self._order)
            items = [(start + k, a) for k, a in enumerate(stored)]
            self._history.push(_Insert(self, items, text))
        return stored

    def delete(self, ids: Iterable[str]) -> None:
        """Delete annotations (unknown ids raise :class:`KeyError` before anything changes)."""
        wanted = set(ids)
        for annotation_id in wanted:
            self.get(annotation_id)
        items = [(i, self._items[a]) for i, a in enumerate(self._order) if a in wanted]
        if items:
            text = "Delete annotation" if len(items) == 1 else f"Delete {len(items)} annotations"
            self._history.push(_Remove(self, items, text))

    def move(
        self, ids: Iterable[str], l0_dx: float, l0_dy: float, *, merge_key: object = None
    ) -> None:
        """Translate annotations by ``(l0_dx, l0_dy)`` level-0 px.

        For live dragging, call this for every mouse move with one ``merge_key`` per
        drag (any value, e.g. a counter): consecutive moves of the same annotations with
        an equal key become one undo step.
        """
        if l0_dx == 0 and l0_dy == 0:
            return
        pairs = [(a, a.translated(l0_dx, l0_dy)) for a in self._values(ids)]
        if pairs:
            text = "Move annotation" if len(pairs) == 1 else f"Move {len(pairs)} annotations"
            self._history.push(_Replace(self, pairs, text, merge_key=merge_key))

    def move_vertex(
        self,
        annotation_id: str,
        ring: int,
        index: int,
        l0_xy: Sequence[float],
        *,
        merge_key: object = None,
    ) -> None:
        """Move one handle (see :meth:`Annotation.handles`) to ``l0_xy``.

        ``merge_key`` works as in :meth:`move`.  :class:`IndexError` for a bad handle.
        """
        old = self.get(annotation_id)
        new = old.with_vertex(ring, index, l0_xy)
        if new != old:
            self._history.push(_Replace(self, [(old, new)], "Edit vertex", merge_key=merge_key))

    def set_class(self, ids: Iterable[str], classification: AnnotationClass | None) -> None:
        """Classify annotations (``None``: unclassified); a new class joins the palette."""
        cls = None if classification is None else self.palette.ensure(classification)
        pairs = [(a, a.with_class(cls)) for a in self._values(ids) if a.classification != cls]
        if pairs:
            text = f"Set class {cls.name}" if cls is not None else "Remove class"
            self._history.push(_Replace(self, pairs, text))

    def set_note(self, annotation_id: str, note: str) -> None:
        old = self.get(annotation_id)
        if old.note != note:
            self._history.push(_Replace(self, [(old, old.with_note(note))], "Edit note"))

    def set_name(self, annotation_id: str, name: str) -> None:
        old = self.get(annotation_id)
        if old.name != name:
            self._history.push(_Replace(self, [(old, old.with_name(name))], "Rename"))

    def replace(self, annotation: Annotation, *, text: str = "Edit annotation") -> None:
        """Replace the annotation of the same id by ``annotation`` (any edit, e.g. a
        vertex inserted with :meth:`Annotation.with_vertex_inserted`)."""
        old = self.get(annotation.id)
        new = self._in_palette(annotation)
        if new != old:
            self._history.push(_Replace(self, [(old, new)], text))

    def recolour_class(self, name: str, colour: Iterable[int]) -> None:
        """Give a palette class a new colour, and every annotation of that class with it."""
        old_cls = self.palette.get(name)
        if old_cls is None:
            raise KeyError(name)
        new_cls = AnnotationClass(name, as_rgb(colour))
        if new_cls == old_cls:
            return
        pairs = [
            (a, a.with_class(new_cls)) for a in self.annotations() if a.classification == old_cls
        ]
        command = _Replace(self, pairs, f"Recolour class {name}", palette_change=(old_cls, new_cls))
        self._history.push(command)

    # -- history -----------------------------------------------------------------------

    @property
    def can_undo(self) -> bool:
        return self._history.can_undo

    @property
    def can_redo(self) -> bool:
        return self._history.can_redo

    @property
    def undo_text(self) -> str:
        """What :meth:`undo` would revert, for a menu ("Undo " + text); ``""`` if nothing."""
        return self._history.undo_text

    @property
    def redo_text(self) -> str:
        return self._history.redo_text

    def undo(self) -> bool:
        """Revert the last edit; ``False`` if there is none."""
        return self._history.undo()

    def redo(self) -> bool:
        return self._history.redo()

    def clear_history(self) -> None:
        """Forget undo/redo (the content and the dirty flag stay)."""
        self._history.clear()

    @property
    def dirty(self) -> bool:
        """Whether there are changes since the last explicit save (:meth:`mark_clean`)."""
        return not self._history.is_clean

    def mark_clean(self) -> None:
        """Record that the current content has been saved (the store calls this)."""
        self._history.set_clean()

    def mark_dirty(self) -> None:
        """Record that the content differs from what is saved, at every undo position."""
        self._history.set_dirty()

    def _on_history(self) -> None:
        self.history_changed.emit()
        dirty = self.dirty
        if dirty != self._was_dirty:
            self._was_dirty = dirty
            self.dirty_changed.emit(dirty)

    # -- selection (not part of undo) ----------------------------------------------------

    @property
    def selection(self) -> frozenset[str]:
        return frozenset(self._selection)

    def selected(self) -> list[Annotation]:
        """Selected annotations in z-order."""
        return [self._items[i] for i in self._order if i in self._selection]

    def select(self, ids: Iterable[str], mode: SelectMode = "replace") -> None:
        """Change the selection: ``replace`` it, ``add`` to it, ``toggle`` or ``remove`` ids.

        Unknown ids raise :class:`KeyError` before anything changes.
        """
        wanted = list(dict.fromkeys(ids))
        for annotation_id in wanted:
            self.get(annotation_id)
        before = self.selection
        if mode == "replace":
            self._selection = dict.fromkeys(wanted)
        elif mode == "add":
            self._selection.update(dict.fromkeys(wanted))
        elif mode == "remove":
            for annotation_id in wanted:
                self._selection.pop(annotation_id, None)
        elif mode == "toggle":
            for annotation_id in wanted:
                if annotation_id in self._selection:
                    del self._selection[annotation_id]
                else:
                    self._selection[annotation_id] = None
        else:
            raise ValueError(f"unknown selection mode {mode!r}")
        if self.selection != before:
            self.selection_changed.emit(self.selection)

    def clear_selection(self) -> None:
        self.select((), "replace")

    # -- hit testing ---------------------------------------------------------------------

    def annotations_at(
        self, l0_x: float, l0_y: float, l0_tolerance: float = 0.0
    ) -> list[Annotation]:
        """Annotations under a point, the one a click should pick first.

        A hit is a point inside an area, or within ``l0_tolerance`` level-0 px of an
        outline, a ruler or a point (a GUI passes its pick radius in screen pixels times
        level-0 px per screen pixel).  Order: smallest area first (points and rulers
        have none), so a click inside a small annotation lying in a big one picks the
        small one; among equals the topmost first.
        """
        hits = [
            self._items[i]
            for i in reversed(self._order)
            if self._items[i].hit(l0_x, l0_y, l0_tolerance)
        ]
        hits.sort(key=lambda a: a.l0_area)  # stable: topmost first among equals
        return hits

    def annotation_at(
        self, l0_x: float, l0_y: float, l0_tolerance: float = 0.0
    ) -> Annotation | None:
        """The first of :meth:`annotations_at`, or ``None``."""
        hits = self.annotations_at(l0_x, l0_y, l0_tolerance)
        return hits[0] if hits else None

    def vertex_at(
        self,
        l0_x: float,
        l0_y: float,
        l0_tolerance: float,
        ids: Iterable[str] | None = None,
    ) -> VertexHit | None:
        """The editable handle nearest a point within ``l0_tolerance``, or ``None``.

        Looks at ``ids`` (typically the selection) or, when ``None``, at all annotations;
        among equally near handles the topmost annotation's wins.
        """
        wanted = None if ids is None else set(ids)
        best: VertexHit | None = None
        for annotation_id in reversed(self._order):
            if wanted is not None and annotation_id not in wanted:
                continue
            annotation = self._items[annotation_id]
            x0, y0, x1, y1 = annotation.l0_bounds
            t = l0_tolerance
            if l0_x < x0 - t or l0_x > x1 + t or l0_y < y0 - t or l0_y > y1 + t:
                continue
            hit = annotation.vertex_at(l0_x, l0_y, l0_tolerance)
            if hit is not None and (best is None or hit.l0_distance < best.l0_distance):
                best = hit
        return best

    def in_rect(
        self,
        l0_x0: float,
        l0_y0: float,
        l0_x1: float,
        l0_y1: float,
        *,
        fully_inside: bool = False,
    ) -> list[Annotation]:
        """Annotations whose bounding box meets the rectangle (or lies inside it with
        ``fully_inside``, as QuPath's drag-to-select does), in z-order.

        By bounding box: right for culling what to paint and for rubber-band selection.
        """
        ax0, ax1 = min(l0_x0, l0_x1), max(l0_x0, l0_x1)
        ay0, ay1 = min(l0_y0, l0_y1), max(l0_y0, l0_y1)
        out = []
        for annotation in self.annotations():
            x0, y0, x1, y1 = annotation.l0_bounds
            if fully_inside:
                if ax0 <= x0 and x1 <= ax1 and ay0 <= y0 and y1 <= ay1:
                    out.append(annotation)
            elif x0 <= ax1 and ax0 <= x1 and y0 <= ay1 and ay0 <= y1:
                out.append(annotation)
        return out

    # -- internals (called by commands) ------------------------------------------------

    def _values(self, ids: Iterable[str]) -> list[Annotation]:
        """Current values of ``ids`` in z-order; :class:`KeyError` for an unknown id."""
        wanted = set(ids)
        for annotation_id in wanted:
            self.get(annotation_id)
        return [self._items[i] for i in self._order if i in wanted]

    def _in_palette(self, annotation: Annotation) -> Annotation:
        cls = annotation.classification
        if cls is None:
            return annotation
        kept = self.palette.ensure(cls)
        return annotation if kept == cls else annotation.with_class(kept)

    def _insert(self, index: int, annotation: Annotation) -> None:
        self._order.insert(index, annotation.id)
        self._items[annotation.id] = annotation
        self._revision += 1
        self.added.emit(annotation)

    def _remove(self, annotation_id: str) -> None:
        annotation = self._items.pop(annotation_id)
        self._order.remove(annotation_id)
        self._revision += 1
        if annotation_id in self._selection:
            del self._selection[annotation_id]
            self.selection_changed.emit(self.selection)
        self.removed.emit(annotation)

    def _replace(self, annotation: Annotation, what: str) -> None:
        self._items[annotation.id] = annotation
        self._revision += 1
        self.changed.emit(annotation, what)

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
* ``history_changed()``: undo/redo availability or their texts may have changed;
* ``mpp_changed(mpp)``: the pixel size measurements use changed (:meth:`set_mpp`;
  not an edit: no undo step, not dirty).

Order is z-order: the first annotation is drawn first (at the bottom); new ones go on
top.  Undoing a deletion puts annotations back at their old places.

The set is the facade; its parts are helpers it owns: the undoable edits are made by
:class:`~viewer.annotations.editing.AnnotationEditor` (with the commands of
:mod:`viewer.annotations.edit_commands`), the selection is a
:class:`~viewer.annotations.selection.Selection`, and hit tests are the functions of
:mod:`viewer.annotations.hit_testing`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from psygnal import Signal

from viewer.annotations.classes import AnnotationClass, ClassPalette
from viewer.annotations.editing import AnnotationEditor, in_palette
from viewer.annotations.hit_testing import annotations_at_point, annotations_in_rect, nearest_vertex
from viewer.annotations.measurements import Measurements, check_mpp, measure
from viewer.annotations.model import Annotation, VertexHit
from viewer.annotations.selection import Selection, SelectMode
from viewer.annotations.undo import UndoStack

__all__ = ["AnnotationSet", "SelectMode"]


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
    mpp_changed = Signal(object)

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
        self._selection = Selection()
        self._revision = 0
        for annotation in annotations:
            if annotation.id in self._items:
                raise ValueError(f"duplicate annotation id {annotation.id}")
            annotation = in_palette(self.palette, annotation)
            self._order.append(annotation.id)
            self._items[annotation.id] = annotation
        self._history = UndoStack(undo_limit)
        if dirty:
            self._history.set_dirty()
        self._was_dirty = self.dirty
        self._history.changed.connect(self._on_history)
        self._editor = AnnotationEditor(self, self._history)

    def __repr__(self) -> str:
        return f"AnnotationSet({self._source_id!r}, {len(self)} annotations)"

    # -- reading -----------------------------------------------------------------------

    @property
    def source_id(self) -> str:
        return self._source_id

    @property
    def mpp(self) -> float | None:
        """Microns per level-0 pixel, ``None`` when unknown."""
        return self._mpp

    def set_mpp(self, mpp: float | None) -> None:
        """Measure with another pixel size from now on (e.g. one the user typed for a
        slide that states none); emits ``mpp_changed`` when it differs.  Not an edit."""
        value = check_mpp(mpp)
        if value != self._mpp:
            self._mpp = value
            self.mpp_changed.emit(value)

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
        return self._editor.add_many(annotations, text, renew_duplicate_ids)

    def import_annotations(
        self,
        additions: Iterable[Annotation],
        replacements: Iterable[Annotation] = (),
        *,
        text: str = "Import annotations",
    ) -> tuple[list[Annotation], list[Annotation]]:
        """One undo step: each of ``replacements`` takes the place (and z-order) of the
        annotation of its id, and ``additions`` go on top.

        Classes join the palette as in :meth:`add_many`.  A replacement whose id is not
        in the set raises :class:`KeyError`, an addition whose id is (or repeats)
        :class:`ValueError`, before anything changes.  Returns the values added and the
        values that replaced others (unchanged ones are left out).
        """
        return self._editor.import_many(additions, replacements, text)

    def delete(self, ids: Iterable[str]) -> None:
        """Delete annotations (unknown ids raise :class:`KeyError` before anything changes)."""
        self._editor.delete(ids)

    def move(
        self, ids: Iterable[str], l0_dx: float, l0_dy: float, *, merge_key: object = None
    ) -> None:
        """Translate annotations by ``(l0_dx, l0_dy)`` level-0 px.

        For live dragging, call this for every mouse move with one ``merge_key`` per
        drag (any value, e.g. a counter): consecutive moves of the same annotations with
        an equal key become one undo step.
        """
        self._editor.move(ids, l0_dx, l0_dy, merge_key)

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
        self._editor.move_vertex(annotation_id, ring, index, l0_xy, merge_key)

    def set_class(self, ids: Iterable[str], classification: AnnotationClass | None) -> None:
        """Classify annotations (``None``: unclassified); a new class joins the palette."""
        self._editor.set_class(ids, classification)

    def set_note(self, annotation_id: str, note: str) -> None:
        self._editor.set_note(annotation_id, note)

    def set_name(self, annotation_id: str, name: str) -> None:
        self._editor.set_name(annotation_id, name)

    def replace(self, annotation: Annotation, *, text: str = "Edit annotation") -> None:
        """Replace the annotation of the same id by ``annotation`` (any edit, e.g. a
        vertex inserted with :meth:`Annotation.with_vertex_inserted`)."""
        self._editor.replace(annotation, text)

    def recolour_class(self, name: str, colour: Iterable[int]) -> None:
        """Give a palette class a new colour, and every annotation of that class with it."""
        self._editor.recolour_class(name, colour)

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
        return self._selection.ids

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
        self._selection.apply(wanted, mode)
        if self.selection != before:
            self.selection_changed.emit(self.selection)

    def clear_selection(self) -> None:
        self.select((), "replace")

    # -- hit testing (see viewer.annotations.hit_testing) --------------------------------

    def annotations_at(
        self, l0_x: float, l0_y: float, l0_tolerance: float = 0.0
    ) -> list[Annotation]:
        """Annotations under a point, the one a click should pick first (smallest area
        first, then topmost: :func:`~viewer.annotations.hit_testing.annotations_at_point`)."""
        return annotations_at_point(reversed(self.annotations()), l0_x, l0_y, l0_tolerance)

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
        """The editable handle nearest a point within ``l0_tolerance``, or ``None``, of
        ``ids`` (typically the selection) or, when ``None``, of all annotations; among
        equally near handles the topmost annotation's wins."""
        return nearest_vertex(reversed(self.annotations()), l0_x, l0_y, l0_tolerance, ids)

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
        ``fully_inside``), in z-order (:func:`~.hit_testing.annotations_in_rect`)."""
        return annotations_in_rect(
            self.annotations(), l0_x0, l0_y0, l0_x1, l0_y1, fully_inside=fully_inside
        )

    # -- internals (called by commands) ------------------------------------------------

    def _insert(self, index: int, annotation: Annotation) -> None:
        if annotation.id in self._items:  # never two annotations with one id
            raise ValueError(f"annotation {annotation.id} is already in the set")
        self._order.insert(index, annotation.id)
        self._items[annotation.id] = annotation
        self._revision += 1
        self.added.emit(annotation)

    def _remove(self, annotation_id: str) -> None:
        annotation = self._items.pop(annotation_id)
        self._order.remove(annotation_id)
        self._revision += 1
        if self._selection.discard(annotation_id):
            self.selection_changed.emit(self.selection)
        self.removed.emit(annotation)

    def _replace(self, annotation: Annotation, what: str) -> None:
        self._items[annotation.id] = annotation
        self._revision += 1
        self.changed.emit(annotation, what)

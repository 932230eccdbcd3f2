"""AnnotationSet: events, undo/redo sequences, the dirty flag and the selection."""

from __future__ import annotations

import pytest

from viewer.annotations import DEFAULT_CLASSES, Annotation, AnnotationClass, AnnotationSet

TUMOUR, STROMA = DEFAULT_CLASSES[0], DEFAULT_CLASSES[1]


class Recorder:
    """Every event of a set, in order, as plain tuples."""

    def __init__(self, aset: AnnotationSet) -> None:
        self.log: list[tuple[object, ...]] = []
        aset.added.connect(lambda a: self.log.append(("added", a.id)))
        aset.removed.connect(lambda a: self.log.append(("removed", a.id)))
        aset.changed.connect(lambda a, what: self.log.append(("changed", a.id, what)))
        aset.selection_changed.connect(lambda ids: self.log.append(("selection", ids)))
        aset.dirty_changed.connect(lambda d: self.log.append(("dirty", d)))

    def take(self) -> list[tuple[object, ...]]:
        out, self.log = self.log, []
        return out


def test_every_edit_fires_its_events_and_undo_fires_the_reverse() -> None:
    aset = AnnotationSet("slide", 0.5)
    rec = Recorder(aset)
    a = aset.add(Annotation.rectangle(0, 0, 10, 10))
    assert rec.take() == [("added", a.id), ("dirty", True)]
    aset.move([a.id], 1, 2)
    aset.move_vertex(a.id, 0, 2, (20, 20))
    aset.set_class([a.id], TUMOUR)
    aset.set_note(a.id, "check margin")
    aset.set_name(a.id, "R1")
    assert rec.take() == [
        ("changed", a.id, "geometry"),
        ("changed", a.id, "geometry"),
        ("changed", a.id, "class"),
        ("changed", a.id, "note"),
        ("changed", a.id, "name"),
    ]
    aset.set_note(a.id, "check margin")  # no change: no event, no undo step
    assert rec.take() == []
    aset.select([a.id])
    aset.delete([a.id])
    assert rec.take() == [
        ("selection", frozenset({a.id})),
        ("selection", frozenset()),
        ("removed", a.id),
    ]
    aset.undo()
    assert rec.take() == [("added", a.id)]
    assert aset.get(a.id).name == "R1"


def test_undo_and_redo_walk_through_every_state() -> None:
    aset = AnnotationSet("slide", None)
    states = [aset.annotations()]
    poly = aset.add(Annotation.polygon([(0, 0), (10, 0), (10, 10)]))
    states.append(aset.annotations())
    aset.move([poly.id], 5, 5)
    states.append(aset.annotations())
    aset.move_vertex(poly.id, 0, 1, (30, 5))
    states.append(aset.annotations())
    aset.set_class([poly.id], STROMA)
    states.append(aset.annotations())
    aset.set_note(poly.id, "note")
    states.append(aset.annotations())
    aset.delete([poly.id])
    states.append(aset.annotations())
    texts = []
    for expected in reversed(states[:-1]):
        texts.append(aset.undo_text)
        assert aset.undo()
        assert aset.annotations() == expected
    assert texts == [
        "Delete annotation",
        "Edit note",
        "Set class Stroma",
        "Edit vertex",
        "Move annotation",
        "Add polygon",
    ]
    assert not aset.undo() and not aset.can_undo
    for expected in states[1:]:
        assert aset.redo()
        assert aset.annotations() == expected
    assert not aset.redo()
    # a new edit after undoing drops what could have been redone
    aset.undo()
    aset.undo()
    aset.set_name(poly.id, "other")
    assert not aset.can_redo and aset.get(poly.id).name == "other"
    assert aset.get(poly.id).classification == STROMA


def test_undoing_a_delete_restores_z_order() -> None:
    a, b, c, d = (Annotation.points([(i, i)]) for i in range(4))
    aset = AnnotationSet("s", None, [a, b, c, d])
    aset.delete([b.id, d.id])
    assert aset.ids() == [a.id, c.id]
    aset.undo()
    assert aset.ids() == [a.id, b.id, c.id, d.id]
    with pytest.raises(KeyError):
        aset.delete([a.id, "no-such-id"])
    assert len(aset) == 4  # nothing changed


def test_a_drag_is_one_undo_step_per_merge_key() -> None:
    a = Annotation.rectangle(0, 0, 10, 10)
    aset = AnnotationSet("s", None, [a])
    for _ in range(3):
        aset.move([a.id], 1, 0, merge_key=1)
    for _ in range(2):
        aset.move_vertex(a.id, 0, 2, (30, 30), merge_key=2)
    aset.move([a.id], 0, 1, merge_key=3)
    aset.move([a.id], 0, 1, merge_key=3)
    assert aset.get(a.id).l0_points == ((3.0, 2.0), (30.0, 32.0))
    aset.undo()
    assert aset.get(a.id).l0_points == ((3.0, 0.0), (30.0, 30.0))
    aset.undo()
    assert aset.get(a.id).l0_points == ((3.0, 0.0), (13.0, 10.0))
    aset.undo()
    assert aset.get(a.id) == a
    assert not aset.can_undo


def test_dirty_follows_the_saved_state() -> None:
    aset = AnnotationSet("s", None, [Annotation.points([(0, 0)])])
    rec = Recorder(aset)
    assert not aset.dirty
    a = aset.add(Annotation.points([(1, 1)]))
    aset.mark_clean()
    assert not aset.dirty
    aset.set_note(a.id, "x")
    aset.undo()  # back to the saved state
    assert not aset.dirty
    aset.undo()  # before the save
    assert aset.dirty
    aset.redo()
    assert not aset.dirty
    assert [e for e in rec.take() if e[0] == "dirty"] == [
        ("dirty", True),
        ("dirty", False),
        ("dirty", True),
        ("dirty", False),
        ("dirty", True),
        ("dirty", False),
    ]
    # a merge never swallows the saved state
    aset.move([a.id], 1, 0, merge_key="drag")
    aset.mark_clean()
    aset.move([a.id], 1, 0, merge_key="drag")
    aset.undo()
    assert not aset.dirty and aset.get(a.id).l0_points == ((2.0, 1.0),)
    # an edit after undoing past the save makes the saved state unreachable
    aset.undo()
    aset.set_name(a.id, "n")
    aset.undo()
    assert aset.dirty
    assert AnnotationSet("s", None, dirty=True).dirty


def test_classes_join_the_palette_with_one_colour_per_name() -> None:
    aset = AnnotationSet("s", None)
    red_tumour = AnnotationClass("Tumour", (255, 0, 0))
    a = aset.add(Annotation.points([(0, 0)], classification=red_tumour))
    assert aset.get(a.id).classification == TUMOUR  # the palette's colour wins
    mitosis = AnnotationClass("Mitosis", (10, 20, 30))
    aset.set_class([a.id], mitosis)
    assert aset.palette.get("Mitosis") == mitosis
    aset.set_class([a.id], None)
    assert aset.get(a.id).classification is None
    assert aset.undo_text == "Remove class"


def test_recolouring_a_class_updates_annotations_and_undoes() -> None:
    a = Annotation.points([(0, 0)], classification=TUMOUR)
    b = Annotation.points([(1, 1)], classification=STROMA)
    aset = AnnotationSet("s", None, [a, b])
    rec = Recorder(aset)
    aset.recolour_class("Tumour", (0, 0, 255))
    assert aset.get(a.id).colour == (0, 0, 255)
    assert aset.palette.get("Tumour") == AnnotationClass("Tumour", (0, 0, 255))
    assert aset.get(b.id) == b
    assert rec.take() == [("changed", a.id, "class"), ("dirty", True)]
    aset.undo()
    assert aset.get(a.id) == a and aset.palette.get("Tumour") == TUMOUR
    with pytest.raises(KeyError):
        aset.recolour_class("Nope", (1, 1, 1))


def test_selection_modes_and_unknown_ids() -> None:
    a, b, c = (Annotation.points([(i, i)]) for i in range(3))
    aset = AnnotationSet("s", None, [a, b, c])
    rec = Recorder(aset)
    aset.select([b.id])
    aset.select([a.id], "add")
    aset.select([b.id, c.id], "toggle")
    assert aset.selection == {a.id, c.id}
    assert aset.selected() == [a, c]
    aset.select([a.id], "remove")
    aset.select([c.id], "add")  # no change: no event
    with pytest.raises(KeyError):
        aset.select(["missing"])
    aset.clear_selection()
    assert rec.take() == [
        ("selection", frozenset({b.id})),
        ("selection", frozenset({a.id, b.id})),
        ("selection", frozenset({a.id, c.id})),
        ("selection", frozenset({c.id})),
        ("selection", frozenset()),
    ]


def test_add_many_is_one_step_and_handles_duplicate_ids() -> None:
    a = Annotation.points([(0, 0)])
    aset = AnnotationSet("s", None, [a])
    with pytest.raises(ValueError, match="already in the set"):
        aset.add_many([a])
    added = aset.add_many([a, a], text="Import 2", renew_duplicate_ids=True)
    assert len(aset) == 3 and len({x.id for x in added} | {a.id}) == 3
    assert aset.undo_text == "Import 2"
    aset.undo()
    assert aset.ids() == [a.id]
    history: list[None] = []
    aset.history_changed.connect(lambda: history.append(None))
    aset.redo()
    assert history and aset.revision > 0


def test_undo_limit_forgets_the_oldest() -> None:
    aset = AnnotationSet("s", None, undo_limit=3)
    for i in range(5):
        aset.add(Annotation.points([(i, i)]))
    undone = 0
    while aset.undo():
        undone += 1
    assert undone == 3 and len(aset) == 2
    assert aset.dirty  # the saved (empty) state was forgotten: it stays unsaved

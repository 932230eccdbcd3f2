"""Importing a file into a slide's annotations: never two annotations with one id, one
question for all conflicts (replace, keep both, skip), QuPath's class spellings read as
ours."""

from __future__ import annotations

import json

import pytest

from viewer.annotations import (
    DEFAULT_CLASSES,
    Annotation,
    AnnotationClass,
    AnnotationSet,
    ClassPalette,
    ConflictPolicy,
    apply_import,
    parse_geojson,
    plan_import,
    to_geojson,
)

TUMOUR = DEFAULT_CLASSES[0]


def file_of(annotations: list[Annotation]) -> tuple[Annotation, ...]:
    """The annotations as a GeoJSON file gives them back (same ids)."""
    return parse_geojson(json.dumps(to_geojson(annotations))).annotations


def slide_with_two() -> tuple[AnnotationSet, list[Annotation]]:
    mine = [
        Annotation.rectangle(0, 0, 10, 10, classification=TUMOUR, name="first"),
        Annotation.points([(5, 5)], name="second"),
    ]
    return AnnotationSet("s", 0.5, mine), mine


def assert_unique_ids(annotations: AnnotationSet) -> None:
    ids = annotations.ids()
    assert len(ids) == len(set(ids))


def test_importing_a_file_twice_finds_every_annotation_already_there() -> None:
    aset, mine = slide_with_two()
    incoming = file_of([*mine, Annotation.ruler([(0, 0), (3, 4)])])
    plan = plan_import(incoming, aset)
    assert plan.conflicts == {a.id for a in mine}
    question = plan.question("case7.geojson")
    assert "2 of the 3 annotations in case7.geojson" in question
    assert "Replace" in question and "Keep both" in question and "Skip" in question


def test_skip_adds_only_what_is_new() -> None:
    aset, mine = slide_with_two()
    new = Annotation.ruler([(0, 0), (3, 4)])
    outcome = apply_import(plan_import(file_of([*mine, new]), aset), aset, ConflictPolicy.SKIP)
    assert (outcome.added, outcome.skipped) == (1, 2)
    assert aset.ids() == [mine[0].id, mine[1].id, new.id]
    assert_unique_ids(aset)
    assert outcome.summary() == "Added 1 annotation, skipped 2 already here."


def test_replace_puts_the_files_version_in_place_as_one_undo_step() -> None:
    aset, mine = slide_with_two()
    edited = mine[0].translated(100, 0).with_name("moved in QuPath")
    outcome = apply_import(plan_import(file_of([edited, mine[1]]), aset), aset, "replace")
    assert (outcome.added, outcome.replaced, outcome.unchanged) == (0, 1, 1)
    assert aset.ids() == [mine[0].id, mine[1].id]  # same ids, same order
    assert aset.get(mine[0].id).name == "moved in QuPath"
    assert aset.get(mine[0].id).l0_bounds == (100.0, 0.0, 110.0, 10.0)
    assert aset.undo()
    assert aset.get(mine[0].id) == mine[0]
    assert not aset.can_undo


def test_keep_both_adds_copies_under_new_ids() -> None:
    aset, mine = slide_with_two()
    outcome = apply_import(
        plan_import(file_of(mine), aset), aset, ConflictPolicy.KEEP_BOTH, text="Import f"
    )
    assert outcome.added == 2 and len(aset) == 4
    assert_unique_ids(aset)
    copies = aset.annotations()[2:]
    assert [c.name for c in copies] == ["first", "second"]
    assert not {c.id for c in copies} & {a.id for a in mine}
    assert aset.undo_text == "Import f"
    assert aset.undo() and len(aset) == 2


@pytest.mark.parametrize("policy", list(ConflictPolicy))
def test_no_policy_ever_gives_two_annotations_one_id(policy: ConflictPolicy) -> None:
    aset, mine = slide_with_two()
    incoming = file_of(mine)
    for _ in range(3):
        apply_import(plan_import(incoming, aset), aset, policy)
        assert_unique_ids(aset)


def test_a_plan_made_before_the_set_changed_still_never_duplicates() -> None:
    aset, mine = slide_with_two()
    stale = plan_import(file_of(mine), AnnotationSet("empty"))
    assert not stale.has_conflicts
    apply_import(stale, aset, ConflictPolicy.SKIP)  # conflicts are looked up again
    assert len(aset) == 2


def test_the_set_refuses_a_second_annotation_with_an_existing_id() -> None:
    aset, mine = slide_with_two()
    twin = Annotation.points([(9, 9)], id=mine[1].id)
    with pytest.raises(ValueError, match="already in the set"):
        aset.add(twin)
    with pytest.raises(ValueError, match="already in the set"):
        aset.import_annotations([Annotation.points([(1, 1)]), twin])
    with pytest.raises(ValueError, match="already in the set"):
        aset._insert(0, twin)  # the last line of defence, under every command
    assert aset.annotations() == mine and not aset.can_undo


def test_qupath_tumor_is_our_tumour_and_the_files_spelling_stays_visible() -> None:
    aset, _ = slide_with_two()
    qupath = Annotation.rectangle(
        5, 5, 8, 8, classification=AnnotationClass("Tumor", (200, 0, 0)), name="from QuPath"
    )
    lower = Annotation.points([(1, 2)], classification=AnnotationClass("tumour", (1, 2, 3)))
    plan = plan_import(file_of([qupath, lower]), aset)
    assert plan.class_spellings == {"Tumor": "Tumour", "tumour": "Tumour"}
    outcome = apply_import(plan, aset)
    assert "classes read 'Tumor' as Tumour" in outcome.summary()
    added = aset.annotations()[2:]
    assert [a.classification for a in added] == [TUMOUR, TUMOUR]
    assert [c.name for c in aset.palette].count("Tumour") == 1
    assert "Tumor" not in aset.palette.names()
    assert aset.palette.aliases("Tumour") == ("Tumor", "tumour")


def test_a_palette_never_holds_one_class_under_two_spellings() -> None:
    palette = ClassPalette([TUMOUR, AnnotationClass("TUMOR", (1, 1, 1))])
    assert palette.names() == ["Tumour"] and palette.aliases("Tumour") == ("TUMOR",)
    assert palette.find("tumor") == TUMOUR
    assert palette.ensure(AnnotationClass("Tumor", (9, 9, 9))) == TUMOUR
    with pytest.raises(ValueError, match="is the palette's 'Tumour'"):
        palette.add(AnnotationClass("tumour", (9, 9, 9)))


def test_a_file_without_uuids_reads_back_with_the_same_ids() -> None:
    """Ids like "tumour-0", or none at all, still make re-importing the file noticed."""
    ring = [[0, 0], [10, 0], [10, 10], [0, 0]]
    features = [
        {
            "type": "Feature",
            "id": "tumour-0",
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        },
        {"type": "Feature", "id": 7, "geometry": {"type": "Point", "coordinates": [1, 2]}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [3, 4]}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [3, 4]}},  # a twin
        {
            "type": "Feature",
            "id": "split",
            "geometry": {"type": "MultiPolygon", "coordinates": [[ring], [ring]]},
        },
    ]
    text = json.dumps({"type": "FeatureCollection", "features": features})
    first = [a.id for a in parse_geojson(text).annotations]
    again = [a.id for a in parse_geojson(text).annotations]
    assert len(set(first)) == len(first) == 6
    assert first[:3] == again[:3] and first[4:] == again[4:]  # the twin's is new each time
    aset = AnnotationSet("s", None, parse_geojson(text).annotations)
    assert len(plan_import(parse_geojson(text).annotations, aset).conflicts) == 5

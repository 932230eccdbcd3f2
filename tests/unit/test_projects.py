"""Projects without Qt: the model and its events, the project file, recent projects, the
facts of a slide file, and layer settings carried from slide to slide."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inference.batch.inputs import BatchItem
from inference.batch.progress import SlideState
from inference.engine.patches import PatchGrid
from inference.results.store import ResultGrid
from viewer.layers.base import LayerStack
from viewer.layers.heatmap import HeatmapLayer
from viewer.projects.facts import annotation_file, read_slide_facts
from viewer.projects.model import (
    DONE,
    FAILED,
    NOT_RUN,
    PROJECT_SUFFIX,
    QUEUED,
    RUNNING,
    Project,
    unique_name,
)
from viewer.projects.paging import LayerCarry
from viewer.projects.recent import MAX_RECENT, RecentProjects
from viewer.projects.storage import ProjectFileError, load_project, save_project


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _state(name: str, status: str, **kwargs: object) -> SlideState:
    state = SlideState(BatchItem.for_file(Path(f"/s/{name}.svs"), name), status=status)
    for key, value in kwargs.items():
        setattr(state, key, value)
    return state


def test_a_project_of_a_folder_names_every_slide_once(tmp_path: Path) -> None:
    root = tmp_path / "study"
    _touch(root / "a.svs")
    _touch(root / "b" / "a.svs")
    _touch(root / "c.ndpi")
    _touch(root / "a.mask.png")  # not a whole-slide file: left out of a folder search
    project = Project.from_folder(root, tmp_path / f"study{PROJECT_SUFFIX}")
    assert [s.name for s in project.slides] == ["a", "b--a", "c"]
    assert project.name == "study" and project.dirty
    assert project.results_folder == tmp_path / "study-results"
    assert unique_name("a", ["A", "a~2"]) == "a~3"


def test_every_change_is_an_event(tmp_path: Path) -> None:
    project = Project(tmp_path / f"p{PROJECT_SUFFIX}")
    changed: list[str] = []
    rows: list[int] = []
    project.changed.connect(lambda: changed.append("changed"))
    project.slide_changed.connect(rows.append)
    added = project.add_slides([tmp_path / "one.svs", tmp_path / "x" / "one.svs"])
    assert added == [0, 1] and [s.name for s in project.slides] == ["one", "one~2"]
    assert project.add_slides([tmp_path / "one.svs"]) == []  # already there
    assert changed == ["changed"]
    project.dirty = False
    project.update(1, done=3, total=10)  # progress only: not worth saving
    assert rows == [1] and not project.dirty
    project.update(1, status=RUNNING)
    assert rows == [1, 1] and project.dirty
    project.update(1, status=RUNNING)  # no change, no event
    assert rows == [1, 1]
    with pytest.raises(ValueError, match="cannot set"):
        project.update(0, colour="red")
    project.remove([0])
    assert [s.name for s in project.slides] == ["one~2"] and project.index_of("one~2") == 0


def test_batch_states_show_on_the_slides_of_the_same_name(tmp_path: Path) -> None:
    project = Project(tmp_path / f"p{PROJECT_SUFFIX}")
    project.add_slides([tmp_path / "a.svs", tmp_path / "b.svs", tmp_path / "c.svs"])
    project.apply_batch_state(_state("a", "queued"))
    project.apply_batch_state(_state("b", "running", done=5, total=20))
    outputs = {"fraction_tumour": 0.25}
    project.apply_batch_state(_state("c", "skipped", outputs=outputs, folder=tmp_path / "c"))
    assert [s.status for s in project.slides] == [QUEUED, RUNNING, DONE]
    assert project[1].progress() == 0.25
    assert project[2].outputs == outputs and project[2].results == tmp_path / "c"
    project.apply_batch_state(_state("a", "failed", message="a.svs: damaged"))
    assert project[0].status == FAILED and project[0].message == "a.svs: damaged"
    project.apply_batch_state(_state("b", "cancelled"))
    project.apply_batch_state(_state("c", "cancelled"))
    assert project[1].status == NOT_RUN and project[2].status == DONE  # as before the run
    assert project.apply_batch_state(_state("elsewhere", "done")) is None
    assert project.output_names() == ["fraction_tumour"]
    assert project.counts()[DONE] == 1


def test_the_project_file_keeps_everything_and_moves_with_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "study"
    path = folder / f"study{PROJECT_SUFFIX}"
    project = Project.from_folder(_touch(folder / "a.svs").parent, path)
    project.add_slides([tmp_path / "elsewhere" / "b.png"])
    project.update(0, width=100, height=50, mpp=0.25, scanner="aperio", source_id="abc")
    project.update(0, status=DONE, outputs={"fraction_tumour": 0.5}, results=folder / "r" / "a")
    project.update(1, typed_mpp=0.7, status=FAILED, message="b.png: no pixel size")
    project.update(1, annotations=tmp_path / "ann.geojson")
    save_project(project)
    assert not project.dirty
    doc = json.loads(path.read_text())
    assert doc["slides"][0]["path"] == "a.svs"  # inside the project folder: relative
    assert doc["slides"][1]["path"] == str((tmp_path / "elsewhere" / "b.png").resolve())

    moved = tmp_path / "moved"
    folder.rename(moved)
    again = load_project(moved / path.name)
    assert [s.name for s in again.slides] == ["a", "b"]
    a, b = again.slides
    assert a.path == moved / "a.svs" and a.results == moved / "r" / "a"
    assert (a.width, a.height, a.mpp, a.scanner, a.source_id) == (100, 50, 0.25, "aperio", "abc")
    assert a.status == DONE and a.outputs == {"fraction_tumour": 0.5}
    assert b.typed_mpp == 0.7 and b.status == FAILED and b.message == "b.png: no pixel size"
    assert b.annotations == (tmp_path / "ann.geojson").resolve()
    assert again.results_folder == moved / "study-results"


def test_a_running_slide_is_saved_as_not_run(tmp_path: Path) -> None:
    project = Project(tmp_path / f"p{PROJECT_SUFFIX}")
    project.add_slides([tmp_path / "a.svs"])
    project.update(0, status=RUNNING)
    save_project(project)
    assert load_project(tmp_path / f"p{PROJECT_SUFFIX}")[0].status == NOT_RUN


@pytest.mark.parametrize(
    ("content", "cause"),
    [
        (None, "no such project file"),
        ("{not json", "not valid JSON"),
        ('{"slides": []}', "not a SlideLens project file"),
        ('{"kind": "slidelens-project", "format": 99, "slides": []}', "newer than"),
        ('{"kind": "slidelens-project", "format": 1}', 'no "slides" list'),
    ],
)
def test_a_bad_project_file_says_which_and_why(
    tmp_path: Path, content: str | None, cause: str
) -> None:
    path = tmp_path / f"bad{PROJECT_SUFFIX}"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ProjectFileError, match=cause) as info:
        load_project(path)
    assert str(path) in str(info.value)


def test_unusable_slide_entries_are_skipped_and_named(tmp_path: Path) -> None:
    path = tmp_path / f"p{PROJECT_SUFFIX}"
    slides = [{"path": "a.svs", "name": "a"}, {"name": "no path"}, {"path": "b.svs", "name": "a"}]
    path.write_text(json.dumps({"kind": "slidelens-project", "format": 1, "slides": slides}))
    project = load_project(path)
    assert [s.name for s in project.slides] == ["a"]
    assert len(project.load_problems) == 2


def test_recent_projects_newest_first(tmp_path: Path) -> None:
    recent = RecentProjects(tmp_path / "recent.json")
    for number in range(MAX_RECENT + 2):
        recent.add(tmp_path / f"p{number}{PROJECT_SUFFIX}")
    recent.add(tmp_path / f"p3{PROJECT_SUFFIX}")
    again = RecentProjects(tmp_path / "recent.json")
    assert len(again.paths) == MAX_RECENT
    assert again.paths[0].name == f"p3{PROJECT_SUFFIX}"
    again.remove(tmp_path / f"p3{PROJECT_SUFFIX}")
    assert f"p3{PROJECT_SUFFIX}" not in [p.name for p in RecentProjects(again.path).paths]
    (tmp_path / "recent.json").write_text("{damaged")
    assert RecentProjects(tmp_path / "recent.json").paths == []


def test_facts_of_a_slide_and_of_a_file_that_is_none(tmp_path: Path) -> None:
    from inference.slides.synth.writer import SynthParams, write_synthetic_slide

    slide = tmp_path / "s.tiff"
    write_synthetic_slide(slide, SynthParams(width=1024, height=768, seed=2, mpp=0.5))
    facts = read_slide_facts(slide, 64)
    assert (facts.width, facts.height, facts.mpp) == (1024, 768, 0.5)
    assert facts.source_id and facts.scanner and not facts.error
    assert facts.thumbnail is not None and max(facts.thumbnail.shape[:2]) <= 64
    broken = read_slide_facts(_touch(tmp_path / "broken.svs", b"not a slide" * 10))
    assert broken.width is None and "broken.svs" in broken.error
    assert annotation_file("abc", {"abc": tmp_path / "a.geojson"}) == tmp_path / "a.geojson"
    assert annotation_file("", {}) is None


def _heatmap(sha: str, name: str = "layer") -> HeatmapLayer:
    grid = PatchGrid(l0_patch=64, l0_stride=64, l0_origin=(0, 0), p_cols=2, p_rows=2)
    result = ResultGrid(grid, ("benign", "tumour"))
    result.patch_probs[:] = np.random.default_rng(0).random(result.patch_probs.shape)
    return HeatmapLayer(name, result, provenance={"model_sha256": sha, "scope": "slide"})


def test_paging_carries_the_look_of_result_layers_of_the_same_model() -> None:
    layers = LayerStack()
    carry = LayerCarry(layers)
    shown = _heatmap("m1")
    layers.add(shown)
    shown.opacity, shown.colormap, shown.visible = 0.9, "magma", False
    assert carry.take() == 1
    layers.clear()  # the next slide opens
    same_model, other_model = _heatmap("m1", "next"), _heatmap("m2", "other")
    layers.add(same_model)
    layers.add(other_model)
    assert (same_model.opacity, same_model.colormap, same_model.visible) == (0.9, "magma", False)
    assert (other_model.opacity, other_model.colormap, other_model.visible) == (
        0.5,
        "viridis",
        True,
    )
    carry.drop()
    later = _heatmap("m1", "later")
    layers.add(later)
    assert (later.opacity, later.colormap) == (0.5, "viridis") and not carry.armed

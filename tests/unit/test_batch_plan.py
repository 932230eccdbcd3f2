"""The batch runner's parts that need no cluster: inputs, result folders, records, the
plan, the figures and the summary."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from inference.batch.folders import partial_folder, publish, remove_stale, stale_folders
from inference.batch.inputs import (
    BatchInputError,
    BatchItem,
    collect_slides,
    duplicate_names,
)
from inference.batch.one_slide import STATUS_COMPLETE, output_paths
from inference.batch.progress import (
    DONE,
    FAILED,
    QUEUED,
    RUNNING,
    SKIPPED,
    SlideState,
    batch_figures,
    format_duration,
)
from inference.batch.record import (
    RECORD_NAME,
    RunIdentity,
    SlideRecord,
    done_record,
    read_record,
    write_record,
)
from inference.batch.runner import BatchRequest, BatchRun, BatchSetupError
from inference.batch.settings import SlideSettings
from inference.batch.summary import SUMMARY_CSV, read_summary_json, write_summary
from inference.slides import content_fingerprint


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# -- inputs --------------------------------------------------------------------------------


def test_a_folder_is_searched_recursively_with_unique_names(tmp_path: Path) -> None:
    root = tmp_path / "study"
    _touch(root / "b.svs")
    _touch(root / "case1" / "a.ndpi")
    _touch(root / "case2" / "a.ndpi")
    _touch(root / "case2" / "a.mask.png")  # masks and thumbnails beside slides: not slides
    _touch(root / "notes.txt")
    _touch(root / ".hidden" / "c.svs")
    _touch(root / "x.ome.tiff")
    out = root / "results"
    _touch(out / "old.tiff")  # the output folder is never searched
    items = collect_slides([root], out=out)
    assert [i.name for i in items] == ["b", "case1--a", "case2--a", "x"]
    assert [i.stem for i in items] == ["b", "a", "a", "x"]
    assert duplicate_names(items) == {}


def test_slides_and_a_list_file_keep_their_order(tmp_path: Path) -> None:
    image = _touch(tmp_path / "patch.png")
    listing = tmp_path / "lists" / "study.txt"
    listing.parent.mkdir()
    listing.write_text("# header\n\n../one.svs\n  /abs/two.svs  \nmissing.tiff\n")
    items = collect_slides([image], listing)
    assert [i.slide for i in items] == [
        image,
        listing.parent / "../one.svs",
        Path("/abs/two.svs"),
        listing.parent / "missing.tiff",
    ]
    assert items[0].name == "patch"  # a plain image is taken when named


def test_bad_inputs_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(BatchInputError, match="no slides found in"):
        collect_slides([tmp_path])
    with pytest.raises(BatchInputError, match=r"nowhere\.txt: cannot read the slide list"):
        collect_slides([], tmp_path / "nowhere.txt")


def test_two_slides_for_one_folder_are_refused_after_the_first(tmp_path: Path) -> None:
    items = [
        BatchItem.for_file(tmp_path / "a" / "s.svs"),
        BatchItem.for_file(tmp_path / "b" / "S.tiff"),
        BatchItem.for_file(tmp_path / "a" / "s.svs"),
        BatchItem.for_file(tmp_path / "t.svs"),
    ]
    refused = duplicate_names(items)
    assert set(refused) == {1, 2}
    assert "same result folder name 'S'" in refused[1] and "another --out" in refused[1]
    assert refused[2].startswith("listed twice")


# -- result folders --------------------------------------------------------------------------


def test_publish_is_a_rename_and_replaces_an_older_folder(tmp_path: Path) -> None:
    final = tmp_path / "s1"
    first = partial_folder(tmp_path, "s1")
    _touch(first / "a.csv", b"first")
    assert stale_folders(tmp_path) == [first]  # until published, it is a leftover
    assert publish(first, final, lambda _: False)
    assert (final / "a.csv").read_bytes() == b"first" and not first.exists()

    second = partial_folder(tmp_path, "s1")
    _touch(second / "a.csv", b"second")
    assert publish(second, final, lambda _: False)
    assert (final / "a.csv").read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s1"]  # the old one is gone


def test_an_equal_result_already_published_wins(tmp_path: Path) -> None:
    final = tmp_path / "s1"
    _touch(final / "a.csv", b"kept")
    late = partial_folder(tmp_path, "s1")
    _touch(late / "a.csv", b"late")
    assert not publish(late, final, lambda folder: folder == final)
    assert (final / "a.csv").read_bytes() == b"kept" and not late.exists()


def test_leftovers_of_a_crash_are_removed(tmp_path: Path) -> None:
    _touch(tmp_path / ".s1.partial-0123456789ab" / "s1.csv")
    _touch(tmp_path / ".s2.replaced-ba9876543210" / "s2.csv")
    _touch(tmp_path / ".keep" / "x")  # not ours
    _touch(tmp_path / "s3" / "s3.csv")
    removed = remove_stale(tmp_path)
    assert [p.name for p in removed] == [".s1.partial-0123456789ab", ".s2.replaced-ba9876543210"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".keep", "s3"]


# -- records -----------------------------------------------------------------------------------


def _complete_folder(folder: Path, slide: Path, identity: RunIdentity) -> SlideRecord:
    """A result folder as a finished task leaves it (files written by hand)."""
    paths = output_paths(folder, slide)
    for path in paths.all():
        _touch(path)
    paths.metadata.write_text(json.dumps({"status": STATUS_COMPLETE}))
    record = SlideRecord(
        slide=str(slide),
        name=folder.name,
        stem=slide.stem,
        source_id=identity.source_id,
        model="m",
        model_sha256=identity.model_sha256,
        settings=identity.settings,
        seconds=1.5,
        counts={"patches": 4, "computed": 3},
        outputs={"fraction_tumour": 0.25},
    )
    write_record(folder, record)
    return record


def test_a_slide_is_done_only_for_the_same_content_model_and_settings(tmp_path: Path) -> None:
    slide = _touch(tmp_path / "s.svs")
    settings = SlideSettings().result_settings()
    identity = RunIdentity(content_fingerprint(slide), "abc", settings)
    folder = tmp_path / "out" / "s"
    record = _complete_folder(folder, slide, identity)
    assert read_record(folder) == record
    assert done_record(folder, slide, "s", identity) == record
    other_settings = SlideSettings(tissue_threshold=0.5).result_settings()
    assert (
        done_record(folder, slide, "s", RunIdentity(identity.source_id, "abc", other_settings))
        is None
    )
    assert done_record(folder, slide, "s", RunIdentity(identity.source_id, "def", settings)) is None
    assert done_record(folder, slide, "s", RunIdentity("other", "abc", settings)) is None
    output_paths(folder, slide).csv.unlink()  # an output lost
    assert done_record(folder, slide, "s", identity) is None


def test_a_damaged_record_means_not_done(tmp_path: Path) -> None:
    (tmp_path / RECORD_NAME).write_text("{not json")
    assert read_record(tmp_path) is None
    (tmp_path / RECORD_NAME).write_text(json.dumps({"format": 999, "slide": "x"}))
    assert read_record(tmp_path) is None


def test_result_settings_leave_out_what_changes_only_speed() -> None:
    fast = SlideSettings(batch_size=64, cpu_lanes=4, torch_threads=2, num_readers=3)
    assert fast.result_settings() == SlideSettings().result_settings()
    assert SlideSettings(device="cuda").result_settings() != SlideSettings().result_settings()


# -- planning ------------------------------------------------------------------------------------


def test_the_plan_skips_done_slides_refuses_duplicates_and_cleans_up(tmp_path: Path) -> None:
    from tests.helpers.models import write_model_folder

    model = write_model_folder(tmp_path / "model")
    done_slide = _touch(tmp_path / "slides" / "done.svs", b"done slide bytes")
    todo = _touch(tmp_path / "slides" / "todo.svs", b"todo slide bytes")
    twin = _touch(tmp_path / "other" / "todo.svs", b"another slide")
    out = tmp_path / "out"
    _touch(out / ".todo.partial-0123456789ab" / "todo.csv")
    items = [BatchItem.for_file(p) for p in (done_slide, todo, twin)]
    run = BatchRun(BatchRequest(items, out, str(model)))
    from inference.models import file_sha256

    identity = RunIdentity(
        content_fingerprint(done_slide),
        file_sha256(model / "model.safetensors"),
        SlideSettings().result_settings(),
    )
    _complete_folder(out / "done", done_slide, identity)

    states = run.plan()
    assert [s.status for s in states] == [SKIPPED, QUEUED, FAILED]
    assert states[0].counts == {"patches": 4, "computed": 3} and states[0].seconds == 1.5
    assert "same result folder name" in states[2].message
    assert [p.name for p in run.removed_stale] == [".todo.partial-0123456789ab"]

    forced = BatchRun(BatchRequest(items, out, str(model), SlideSettings(force=True)))
    assert [s.status for s in forced.plan()] == [QUEUED, QUEUED, FAILED]


def test_an_unknown_model_stops_the_batch_naming_it(tmp_path: Path) -> None:
    run = BatchRun(BatchRequest([BatchItem.for_file(tmp_path / "a.svs")], tmp_path, "nope-model"))
    with pytest.raises(BatchSetupError, match="nope-model"):
        run.run()


# -- figures and summary -------------------------------------------------------------------------


def _state(name: str, status: str, **kwargs: object) -> SlideState:
    state = SlideState(BatchItem.for_file(Path(f"/s/{name}.svs")), status=status)
    for key, value in kwargs.items():
        setattr(state, key, value)
    return state


def test_figures_count_patches_and_estimate_the_time_left() -> None:
    states = [
        _state("a", DONE, counts={"computed": 100}),
        _state("b", RUNNING, done=50, total=100),
        _state("c", QUEUED),
        _state("d", SKIPPED, counts={"computed": 999}),  # earlier run: not this run's work
    ]
    figures = batch_figures(states, elapsed_s=10.0)
    assert (figures.total, figures.done, figures.skipped, figures.running) == (4, 1, 1, 1)
    assert figures.patches == 150 and figures.patches_per_s == 15.0
    assert figures.eta_s == pytest.approx(10.0 * 1.5 / 1.5)  # 1.5 of 3 slides done in 10 s
    assert figures.slides_left == 2
    assert batch_figures([_state("a", QUEUED)], 0.0).eta_s is None
    assert format_duration(None) == "--:--" and format_duration(3725) == "1:02:05"
    assert format_duration(65.4) == "1:05"


def test_the_summary_lists_every_slide_with_its_outputs(tmp_path: Path) -> None:
    states = [
        _state(
            "a",
            DONE,
            seconds=2.5,
            attempts=1,
            counts={"patches": 4, "computed": 3},
            outputs={"fraction_tumour": 0.5, "max_prob_tumour": 0.9},
        ),
        _state("b", FAILED, attempts=3, message="b.svs: damaged, says why"),
    ]
    write_summary(tmp_path, states, {"model": "m"})
    with (tmp_path / SUMMARY_CSV).open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["status"] for r in rows] == [DONE, FAILED]
    assert rows[0]["fraction_tumour"] == "0.5" and rows[1]["fraction_tumour"] == ""
    assert rows[1]["error"] == "b.svs: damaged, says why" and rows[1]["attempts"] == "3"
    doc = read_summary_json(tmp_path)
    assert doc is not None and doc["run"] == {"model": "m"}
    assert doc["slides"][0]["outputs"] == {"fraction_tumour": 0.5, "max_prob_tumour": 0.9}
    assert doc["slides"][0]["seconds"] == 2.5 and doc["slides"][1]["seconds"] is None


def test_a_slide_s_own_pixel_size_is_part_of_its_settings(tmp_path: Path) -> None:
    item = BatchItem.for_file(tmp_path / "patch.png", mpp=0.8)
    assert item.settings(SlideSettings()).mpp == 0.8
    assert item.settings(SlideSettings(mpp=0.25)).mpp == 0.25  # --mpp wins
    assert BatchItem.for_file(tmp_path / "a.svs").settings(SlideSettings()).mpp is None

    from tests.helpers.models import write_model_folder

    model = write_model_folder(tmp_path / "model")
    slide = _touch(tmp_path / "slides" / "patch.png", b"png bytes")
    out = tmp_path / "out"
    from inference.models import file_sha256

    made_at = SlideSettings(mpp=0.8).result_settings()
    identity = RunIdentity(
        content_fingerprint(slide), file_sha256(model / "model.safetensors"), made_at
    )
    _complete_folder(out / "patch", slide, identity)
    same = BatchRun(BatchRequest([BatchItem.for_file(slide, mpp=0.8)], out, str(model)))
    other = BatchRun(BatchRequest([BatchItem.for_file(slide, mpp=0.5)], out, str(model)))
    assert [s.status for s in same.plan()] == [SKIPPED]
    assert [s.status for s in other.plan()] == [QUEUED]


def test_a_local_cluster_is_sized_from_gpus_then_cores() -> None:
    from inference.batch.cluster import local_cluster_size

    assert local_cluster_size(cores=2, gpus=0) == (1, 1)
    assert local_cluster_size(cores=16, gpus=0) == (4, 1)
    assert local_cluster_size(cores=16, gpus=2) == (2, 1)  # one worker per GPU


def test_a_batchs_model_identity_covers_what_makes_its_slide_answers(tmp_path: Path) -> None:
    from inference.batch.runner import identify_model
    from inference.models import file_sha256
    from tests.helpers.models import write_model_folder

    folder = write_model_folder(tmp_path / "patch")
    plain = identify_model(str(folder))
    weights = file_sha256(folder / "model.safetensors")
    assert plain.sha256 == plain.patch_model_sha256 == weights and not plain.slide_level

    card_path = folder / "config.json"
    card = json.loads(card_path.read_text())
    card["slidelens"]["aggregation"] = {"type": "top_k_mean", "k": 4}
    card_path.write_text(json.dumps(card))
    top4 = identify_model(str(folder))
    assert top4.slide_level and top4.patch_model_sha256 == weights
    assert top4.sha256 != weights  # other answers: the slides are done again
    card["slidelens"]["aggregation"]["k"] = 8
    card_path.write_text(json.dumps(card))
    assert identify_model(str(folder)).sha256 not in (weights, top4.sha256)

    # a grading rule or a threshold changes the files too
    del card["slidelens"]["aggregation"]
    card["slidelens"]["threshold"] = 0.7
    card_path.write_text(json.dumps(card))
    thresholded = identify_model(str(folder))
    assert thresholded.sha256 != weights and not thresholded.slide_level
    grader = identify_model("demo-prostate-grader")
    assert grader.sha256 != grader.patch_model_sha256  # its card grades

    head = identify_model("demo-tumour-mil")  # a head names its patch model
    assert head.slide_level and head.patch_model_folder.name == "demo-tumour-classifier"
    assert head.sha256 != head.patch_model_sha256

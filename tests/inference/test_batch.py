"""``slidelens batch`` on a real Dask ``LocalCluster`` of worker processes.

Six small synthetic slides and a tiny model: the batch's files equal ``slidelens infer``'s
slide by slide; a worker killed mid-slide loses nothing and duplicates nothing; a rerun
skips every slide in a fraction of the first run's time; a corrupt slide fails with its
cause while the others finish; Ctrl-C leaves finished slides done and nothing
half-written.  Clusters are small (2 workers, 1 thread each) and closed with their
processes checked gone.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
import tifffile

from inference.batch.cluster import WORKER_PRELOAD
from inference.batch.inputs import BatchItem
from inference.batch.progress import DONE, FAILED, SKIPPED
from inference.batch.record import RECORD_NAME, read_record
from inference.batch.runner import BatchOutcome, BatchRequest, BatchRun, BatchUpdate
from inference.batch.settings import SlideSettings
from inference.batch.summary import SUMMARY_CSV, read_summary_json
from inference.cli.main import main
from inference.results.exports import read_result_npz
from inference.results.slide_level import slide_level_outputs
from tests.helpers.models import write_model_folder

pytestmark = pytest.mark.slow

SLIDES = 6
#: One lane of one torch thread in both commands: the same arithmetic, bit for bit.
EXACT = SlideSettings(device="cpu", no_cache=True, cpu_lanes=1, torch_threads=1)
EXACT_FLAGS = ["--device", "cpu", "--no-cache", "--cpu-lanes", "1", "--torch-threads", "1"]


@pytest.fixture(scope="module")
def slides(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from inference.slides.synth.writer import SynthParams, write_synthetic_slide

    folder = tmp_path_factory.mktemp("slides")
    paths = []
    for seed in range(SLIDES):
        path = folder / f"slide-{seed}.tiff"
        write_synthetic_slide(path, SynthParams(width=1024, height=1024, seed=seed, mpp=0.5))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_folder(tmp_path_factory.mktemp("model") / "tiny-cnn")


def _children() -> set[int]:
    """Processes this one started (multiprocessing's resource tracker, which lives as
    long as this process whoever started it, aside)."""
    return {
        p.pid
        for p in psutil.Process().children(recursive=True)
        if not any("resource_tracker" in part for part in p.cmdline())
    }


def _gone(pids: set[int], timeout: float = 20.0) -> set[int]:
    """The pids still alive after ``timeout`` seconds (zombies count as gone)."""
    deadline = time.monotonic() + timeout
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {
            p
            for p in alive
            if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
        }
        time.sleep(0.1)
    return alive


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A LocalCluster of 2 worker processes (1 thread each), closed afterwards."""
    from distributed import Client, LocalCluster

    before = _children()
    data = tmp_path_factory.mktemp("worker-userdata")
    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        scheduler_kwargs={"dashboard": False},
        silence_logs=logging.CRITICAL,
        preload=[WORKER_PRELOAD],
        env={"SLIDELENS_DATA_DIR": str(data)},
    )
    dask_client = Client(cluster)
    try:
        yield dask_client
    finally:
        dask_client.close()
        cluster.close()
        assert _gone(_children() - before) == set(), "worker processes outlived the cluster"


def _request(
    items: list[BatchItem], out: Path, model: Path, retries: int = 1, **settings: Any
) -> BatchRequest:
    values = {**vars(EXACT), **settings}
    return BatchRequest(items, out, str(model), SlideSettings(**values), retries=retries)


def _items(slides: list[Path]) -> list[BatchItem]:
    return [BatchItem.for_file(p) for p in slides]


def _result_folders(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.is_dir())


def _features(path: Path) -> list[dict[str, Any]]:
    """The GeoJSON features without their ids (each export draws new random UUIDs)."""
    features = json.loads(path.read_text())["features"]
    return [{k: v for k, v in f.items() if k != "id"} for f in features]


def _same_results(batch_folder: Path, infer_out: Path, stem: str) -> None:
    csv = (batch_folder / f"{stem}.csv").read_bytes()
    assert csv == (infer_out / f"{stem}.csv").read_bytes(), f"{stem}.csv differs"
    features = _features(batch_folder / f"{stem}.geojson")
    assert features and features == _features(infer_out / f"{stem}.geojson")
    a_npz = np.load(batch_folder / f"{stem}.result.npz")
    b_npz = np.load(infer_out / f"{stem}.result.npz")
    assert sorted(a_npz.files) == sorted(b_npz.files)
    for name in a_npz.files:
        np.testing.assert_array_equal(a_npz[name], b_npz[name], err_msg=f"{stem} {name}")
    with (
        tifffile.TiffFile(batch_folder / f"{stem}.heatmap.tiff") as a_tif,
        tifffile.TiffFile(infer_out / f"{stem}.heatmap.tiff") as b_tif,
    ):
        assert len(a_tif.pages) == len(b_tif.pages) > 0
        for a_page, b_page in zip(a_tif.pages, b_tif.pages, strict=True):
            np.testing.assert_array_equal(a_page.asarray(), b_page.asarray())  # type: ignore[union-attr]
    a_run = json.loads((batch_folder / f"{stem}.run.json").read_text())
    b_run = json.loads((infer_out / f"{stem}.run.json").read_text())
    for key in ("status", "counts", "cache_key", "heatmap", "outputs"):
        assert a_run[key] == b_run[key], key
    assert a_run["slide"] == b_run["slide"]
    assert a_run["model"]["sha256"] == b_run["model"]["sha256"]


def test_batch_equals_infer_slide_by_slide(
    slides: list[Path], model: Path, client: Any, tmp_path: Path
) -> None:
    out = tmp_path / "batch"
    outcome = BatchRun(_request(_items(slides), out, model), client=client).run()
    assert [s.status for s in outcome.states] == [DONE] * SLIDES
    assert outcome.exit_code == 0

    infer_out = tmp_path / "infer"
    assert main(["infer", *map(str, slides), "--model", str(model), "--out", str(infer_out),
                 *EXACT_FLAGS, "-q"]) == 0  # fmt: skip
    assert _result_folders(out) == sorted(p.stem for p in slides)
    for state, slide in zip(outcome.states, slides, strict=True):
        folder = out / slide.stem
        _same_results(folder, infer_out, slide.stem)
        record = read_record(folder)
        assert record is not None and record.name == slide.stem
        result = read_result_npz(folder / f"{slide.stem}.result.npz")
        assert record.outputs == slide_level_outputs(result) == state.outputs
        assert set(record.outputs) == {"fraction_benign", "fraction_tumour", "max_prob_tumour"}
        assert (
            record.counts == json.loads((folder / f"{slide.stem}.run.json").read_text())["counts"]
        )
    summary = read_summary_json(out)
    assert summary is not None
    rows = summary["slides"]
    assert [r["status"] for r in rows] == [DONE] * SLIDES
    assert all(r["patches"] == 64 and r["seconds"] > 0 and r["error"] == "" for r in rows)
    header = (out / SUMMARY_CSV).read_text().splitlines()[0].split(",")
    assert header[:4] == ["slide", "name", "status", "seconds"]
    assert "fraction_tumour" in header
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


@pytest.fixture(scope="module")
def fine_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model on a twice finer grid (0.5 um/px: 256 patches a slide), so a slide
    computes for long enough to be caught half-way."""
    folder = write_model_folder(tmp_path_factory.mktemp("model") / "fine-cnn")
    card = json.loads((folder / "config.json").read_text())
    card["spacing_um_px"] = 0.5
    (folder / "config.json").write_text(json.dumps(card))
    return folder


def test_a_killed_worker_loses_nothing_and_duplicates_nothing(
    slides: list[Path], fine_model: Path, client: Any, tmp_path: Path
) -> None:
    pids: dict[str, int] = client.run(os.getpid)
    killed: list[tuple[str, int, int, int]] = []

    def kill_one_half_way(update: BatchUpdate) -> None:
        for state in update.states:
            # a slide with patches done and patches to do: its worker is mid-slide
            if update.kind == "slide" and 0 < state.done < state.total and not killed:
                pid = pids[state.worker]
                killed.append((state.name, pid, state.done, state.total))
                os.kill(pid, signal.SIGKILL)

    out = tmp_path / "out"
    request = _request(_items(slides), out, fine_model, batch_size=8, tissue_threshold=0.0)
    outcome = BatchRun(request, client=client, listener=kill_one_half_way).run()

    assert killed, "no slide was seen half-way"
    name, pid, done, total = killed[0]
    assert 0 < done < total == 256
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    by_name = {s.name: s for s in outcome.states}
    assert [s.status for s in outcome.states] == [DONE] * SLIDES
    assert by_name[name].attempts == 2  # Dask ran it again on a live worker
    assert by_name[name].worker != next(a for a, p in pids.items() if p == pid)
    assert _result_folders(out) == sorted(p.stem for p in slides)  # one folder each
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no half-written folder
    for slide in slides:
        record = read_record(out / slide.stem)
        assert record is not None and record.counts["computed"] == 256
        assert len((out / slide.stem / f"{slide.stem}.csv").read_text().splitlines()) == 257
    assert set(client.run(os.getpid).values()).isdisjoint({pid})  # the nanny made a new one


def test_the_command_resumes_and_skips_done_slides_fast(
    slides: list[Path], model: Path, client: Any, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    before = _children()
    base = ["batch", str(slides[0].parent), "--model", str(model), "--out", str(out), "-q"]
    t0 = time.perf_counter()
    assert main([*base, *EXACT_FLAGS, "--workers", "2", "--no-dashboard"]) == 0
    first_s = time.perf_counter() - t0
    assert _gone(_children() - before) == set(), "the command left worker processes"
    assert _result_folders(out) == sorted(p.stem for p in slides)
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*/*")}

    t0 = time.perf_counter()
    assert main([*base, *EXACT_FLAGS]) == 0
    rerun_s = time.perf_counter() - t0
    assert rerun_s < first_s / 10, (rerun_s, first_s)
    summary = read_summary_json(out)
    assert summary is not None
    assert [r["status"] for r in summary["slides"]] == [SKIPPED] * SLIDES
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/*")} == mtimes

    # a changed slide is redone, other settings redo everything, a crash's leftovers go
    from inference.slides.synth.writer import SynthParams, write_synthetic_slide

    changed = tmp_path / "slides"
    changed.mkdir()
    copies = []
    for slide in slides:
        copy = changed / slide.name
        copy.write_bytes(slide.read_bytes())
        copies.append(copy)
    write_synthetic_slide(copies[2], SynthParams(width=1024, height=1024, seed=99, mpp=0.5))
    (out / f".{slides[4].stem}.partial-0123456789ab").mkdir()
    outcome = BatchRun(_request(_items(copies), out, model), client=client).run()
    statuses = {s.name: s.status for s in outcome.states}
    assert statuses.pop(slides[2].stem) == DONE
    assert set(statuses.values()) == {SKIPPED}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    outcome = BatchRun(
        _request(_items(copies[:2]), out, model, tissue_threshold=0.5), client=client
    ).run()
    assert [s.status for s in outcome.states] == [DONE, DONE]


def test_a_corrupt_slide_fails_with_its_cause_while_the_others_finish(
    slides: list[Path], model: Path, client: Any, tmp_path: Path
) -> None:
    corrupt = tmp_path / "corrupt.svs"
    corrupt.write_bytes(b"II*\x00" + b"\x00garbage" * 64)
    listing = tmp_path / "slides.txt"
    lines = ["# the study", *map(str, slides[:3]), "", corrupt.name, *map(str, slides[3:])]
    listing.write_text("\n".join(lines) + "\n")
    from inference.batch.inputs import collect_slides

    items = collect_slides([], listing)
    assert [i.slide for i in items] == [*slides[:3], corrupt, *slides[3:]]
    out = tmp_path / "out"
    outcome = BatchRun(_request(items, out, model, retries=1), client=client).run()
    by_name = {s.name: s for s in outcome.states}
    failed = by_name.pop("corrupt")
    assert failed.status == FAILED and failed.attempts == 2  # tried, then retried once
    assert "corrupt.svs" in failed.message and "damaged" in failed.message, failed.message
    assert {s.status for s in by_name.values()} == {DONE}
    assert outcome.exit_code == 1
    assert _result_folders(out) == sorted(p.stem for p in slides)  # none for the corrupt one
    rows = {r["name"]: r for r in read_summary_json(out)["slides"]}  # type: ignore[index]
    assert rows["corrupt"]["status"] == FAILED and rows["corrupt"]["error"] == failed.message
    assert "corrupt.svs" in (out / SUMMARY_CSV).read_text()


def test_a_running_scheduler_runs_the_slides(
    slides: list[Path], model: Path, client: Any, tmp_path: Path
) -> None:
    """``--scheduler ADDRESS``: the batch connects to a running cluster (here the
    fixture's) and leaves it running."""
    from inference.batch.cluster import ClusterRequest

    out = tmp_path / "out"
    notes: list[str] = []
    request = _request(_items(slides[:2]), out, model)
    run = BatchRun(
        request,
        cluster=ClusterRequest(scheduler=client.scheduler.address),
        listener=lambda update: notes.append(update.message) if update.kind == "cluster" else None,
    )
    outcome = run.run()
    assert [s.status for s in outcome.states] == [DONE, DONE]
    assert notes and notes[0].startswith(f"scheduler {client.scheduler.address}: 2 worker(s)")
    assert "dashboard" in notes[0]  # its address, or why there is none
    assert len(client.run(os.getpid)) == 2  # the cluster is still there


def test_ctrl_c_keeps_finished_slides_and_leaves_nothing_half_written(
    slides: list[Path], model: Path, tmp_path: Path
) -> None:
    from inference.batch.cluster import ClusterRequest

    before = _children()
    out = tmp_path / "out"
    finished: list[str] = []

    def interrupt_after_the_first(update: BatchUpdate) -> None:
        done = [s.name for s in update.states if s.status == DONE]
        if done and not finished:
            finished.extend(done)
            signal.raise_signal(signal.SIGINT)  # what Ctrl-C does to this process

    request = _request(_items(slides), out, model)
    run = BatchRun(
        request,
        cluster=ClusterRequest(workers=2, threads_per_worker=1, dashboard=False),
        listener=interrupt_after_the_first,
    )
    with pytest.raises(KeyboardInterrupt):
        run.run()
    assert _gone(_children() - before) == set(), "interrupted: workers outlived the cluster"
    assert finished
    statuses = {s.name: s.status for s in run.states}
    assert {statuses[n] for n in finished} == {DONE}
    done = {n for n, s in statuses.items() if s == DONE}
    assert set(statuses.values()) <= {DONE, "cancelled"} and len(done) < SLIDES
    assert set(_result_folders(out)) == done  # every folder is whole: written by rename
    for name in done:
        assert (out / name / RECORD_NAME).is_file()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    rows = read_summary_json(out)["slides"]  # type: ignore[index]
    assert {r["name"]: r["status"] for r in rows} == statuses

    # the next run does only what is left
    outcome: BatchOutcome = BatchRun(request, cluster=ClusterRequest(workers=1)).run()
    assert {s.name for s in outcome.states if s.status == SKIPPED} == done
    assert {s.status for s in outcome.states} <= {DONE, SKIPPED}


def test_bench_batch_prints_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    """``slidelens bench batch`` on two small slides: both commands compute the same
    patches, and every figure and ratio is there."""
    argv = ["bench", "batch", "--count", "2", "--side", "1024", "--workers", "1", "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["bench"] == "batch" and report["slides"] == 2 and report["same_counts"]
    for phase in ("infer_sequential", "batch_1_workers"):
        figures = report[phase]
        assert figures["patches"] > 0 and figures["wall_s"] > figures["compute_s"] > 0
        assert figures["slides_per_hour"] == pytest.approx(2 * 3600 / figures["wall_s"], 0.01)
        assert figures["cpu_s"] > 0 and figures["patches_per_cpu_s"] > 0
    ratio = (
        report["batch_1_workers"]["slides_per_hour"] / report["infer_sequential"]["slides_per_hour"]
    )
    assert report["batch_vs_infer"]["1"] == pytest.approx(ratio, abs=0.001)


def test_a_slide_level_head_answers_every_slide_as_infer_does(
    slides: list[Path], client: Any, tmp_path: Path
) -> None:
    head = "demo-tumour-mil"  # ABMIL over the demo tumour classifier's embeddings
    out = tmp_path / "batch"
    items = _items(slides[:2])
    outcome = BatchRun(_request(items, out, Path(head)), client=client).run()
    assert [s.status for s in outcome.states] == [DONE, DONE], outcome.states
    infer_out = tmp_path / "infer"
    assert main(["infer", *map(str, slides[:2]), "--model", head, "--out", str(infer_out),
                 *EXACT_FLAGS, "-q"]) == 0  # fmt: skip
    for state, slide in zip(outcome.states, slides[:2], strict=True):
        report = json.loads((out / slide.stem / f"{slide.stem}.slide.json").read_text())
        expected = json.loads((infer_out / f"{slide.stem}.slide.json").read_text())
        assert report["slide_label"] == expected["slide_label"]
        assert report["slide_probabilities"] == expected["slide_probabilities"]
        assert report["aggregation"]["type"] == "abmil"
        columns = {f"slide_prob_{k}": v for k, v in expected["slide_probabilities"].items()}
        assert state.outputs.items() >= columns.items()
    header = (out / SUMMARY_CSV).read_text().splitlines()[0].split(",")
    assert {"slide_prob_tumour", "slide_prob_no tumour"} <= set(header)

    # the head is part of what the results were made from: the same head skips, the
    # patch model alone redoes them
    again = BatchRun(_request(items, out, Path(head)), client=client).run()
    assert [s.status for s in again.states] == [SKIPPED, SKIPPED]
    alone = BatchRun(_request(items, out, Path("demo-tumour-classifier")), client=client).run()
    assert [s.status for s in alone.states] == [DONE, DONE]
    assert all(not any(k.startswith("slide_prob_") for k in s.outputs) for s in alone.states)

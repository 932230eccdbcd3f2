"""The inference engine against a direct per-patch computation on tiny CPU models.

``ArraySource`` (a SlideSource over a NumPy pyramid) and ``TinyModel`` (a hand-built
model object with the ``ModelLike`` shape) are reused by the other engine test files.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from inference.core.geometry import Rect
from inference.engine.device import host_batch
from inference.engine.job import BatchResult, InferenceJob
from inference.engine.patches import MissingMppError, make_patch_grid, order_patches
from inference.engine.prepare import prepare
from inference.engine.runner import run
from inference.results.store import ResultGrid, SegmentationMap, collect
from tests.helpers.models import TinyCard, TinyModel, write_model_folder
from tests.helpers.slides import WHITE, ArraySource, tissue_image

torch.set_num_threads(1)


# -- test doubles ------------------------------------------------------------------------


def reader_threads() -> list[threading.Thread]:
    """The engine's threads: patch readers, or lanes that read and compute."""
    prefixes = ("slidelens-reader", "slidelens-lane")
    return [t for t in threading.enumerate() if t.name.startswith(prefixes)]


def all_batches(job: InferenceJob, **kwargs: Any) -> list[BatchResult]:
    return list(run(job, **kwargs))


# -- grid ----------------------------------------------------------------------------------


def test_patch_grid_at_model_spacing() -> None:
    source = ArraySource(tissue_image(1000, 700), mpp=0.25)
    grid = make_patch_grid(source.info, TinyCard(patch_size_pixels=224, spacing_um_px=0.5))
    assert grid.l0_patch == 448 and grid.l0_stride == 448
    assert (grid.p_cols, grid.p_rows) == (3, 2)  # the last patches reach past the edge
    assert grid.patch_l0_rect(2, 1) == Rect(896, 448, 448, 448)
    assert grid.p_index_of(900, 10) == (2, 0)
    assert grid.p_index_of(-1, 10) is None and grid.p_index_of(5000, 10) is None
    half = make_patch_grid(source.info, TinyCard(patch_size_pixels=224), overlap=0.5)
    assert half.l0_stride == 224 and half.p_cols == 4


def test_region_grid_lines_up_with_whole_slide_grid() -> None:
    source = ArraySource(tissue_image(640, 640))
    full = make_patch_grid(source.info, TinyCard())
    part = make_patch_grid(source.info, TinyCard(), region=Rect(70, 40, 60, 10))
    assert part.l0_origin == (64, 32) and (part.p_cols, part.p_rows) == (3, 1)
    assert set(map(tuple, part.l0_xy(part.all_p_ij()))) <= set(
        map(tuple, full.l0_xy(full.all_p_ij()))
    )


def test_missing_mpp_says_what_to_do() -> None:
    source = ArraySource(tissue_image(128, 128), mpp=None, name="scan.svs")
    with pytest.raises(MissingMppError, match=r"scan\.svs.*--mpp"):
        make_patch_grid(source.info, TinyCard())
    with pytest.raises(MissingMppError):
        list(run(InferenceJob(source, TinyModel(), device="cpu")))
    grid = make_patch_grid(source.info, TinyCard(), mpp_override=0.25)
    assert grid.l0_patch == 64


def test_order_puts_region_first_nearest_centre_first() -> None:
    source = ArraySource(tissue_image(320, 320))
    grid = make_patch_grid(source.info, TinyCard())
    region = Rect(200, 200, 64, 64)
    order = order_patches(grid, grid.all_p_ij(), region)
    first = {tuple(p) for p in order[:4]}
    assert first == {(6, 6), (7, 6), (6, 7), (7, 7)}
    assert tuple(order[4]) != (0, 0) and tuple(order[-1]) == (0, 0)


# -- engine equals the direct computation --------------------------------------------------


@pytest.mark.parametrize(
    ("mpp", "level", "lv_patch"),
    [(0.5, 0, 32), (0.25, 1, 32), (0.3, 0, 53)],
    ids=["level0-no-resize", "level1", "level0-resized"],
)
def test_engine_probabilities_equal_direct_per_patch(mpp: float, level: int, lv_patch: int) -> None:
    source = ArraySource(tissue_image(300, 200, seed=1), mpp=mpp)
    model = TinyModel()
    job = InferenceJob(source, model, device="cpu", batch_size=5, tissue_threshold=0)
    batches = all_batches(job)
    grid = batches[0].grid
    assert sum(len(b) for b in batches) == grid.count
    assert batches[-1].done == batches[-1].total == grid.count
    ds = 2**level
    for batch in batches:
        assert batch.probs.dtype == np.float32 and batch.probs.shape == (len(batch), 2)
        for (l0_x, l0_y), probs in zip(batch.l0_xy, batch.probs, strict=True):
            rgb = source.read_region(level, l0_x // ds, l0_y // ds, lv_patch, lv_patch)
            if lv_patch != 32:
                rgb = cv2.resize(rgb, (32, 32), interpolation=cv2.INTER_AREA)
            np.testing.assert_allclose(probs, model.direct(rgb), atol=1e-5)
    assert not source.closed  # the caller's source stays open


def test_result_grid_without_overlap_holds_the_patch_probabilities() -> None:
    source = ArraySource(tissue_image(256, 128, seed=2))
    model = TinyModel()
    batches = all_batches(
        InferenceJob(source, model, device="cpu", batch_size=7, tissue_threshold=0)
    )
    result = collect(batches)
    assert isinstance(result, ResultGrid)
    probs = result.probabilities()
    for batch in batches:
        for (col, row), p in zip(batch.p_ij, batch.probs, strict=True):
            np.testing.assert_allclose(probs[:, row, col], p, atol=1e-6)
    assert result.coverage == 1.0
    np.testing.assert_array_equal(result.argmax(), probs.argmax(axis=0))


# -- tissue ------------------------------------------------------------------------------


def test_background_patches_are_skipped_and_reported() -> None:
    source = ArraySource(tissue_image(256, 128, tissue_cols=0.5))
    batches = all_batches(InferenceJob(source, TinyModel(), device="cpu", batch_size=4))
    grid = batches[0].grid
    assert (grid.p_cols, grid.p_rows) == (8, 4)
    background = batches[0].background_p_ij
    assert len(background) == batches[0].skipped_background == 16
    assert set(background[:, 0].tolist()) == {4, 5, 6, 7}
    assert all(len(b.background_p_ij) == 0 for b in batches[1:])
    computed = np.concatenate([b.p_ij for b in batches])
    assert set(computed[:, 0].tolist()) == {0, 1, 2, 3}
    assert batches[-1].total == 16
    result = collect(batches)
    assert result is not None and result.background[:, 4:].all()
    assert np.isnan(result.probabilities()[:, :, 4:]).all()
    assert result.coverage == 1.0


def test_all_background_yields_one_empty_batch() -> None:
    source = ArraySource(np.full((128, 128, 3), WHITE, np.uint8))
    batches = all_batches(InferenceJob(source, TinyModel(), device="cpu"))
    assert len(batches) == 1 and len(batches[0]) == 0
    assert batches[0].total == 0 and batches[0].skipped_background == 16
    assert batches[0].probs.shape == (0, 2)


# -- overlap ------------------------------------------------------------------------------


def test_overlap_patches_match_direct_and_are_averaged() -> None:
    source = ArraySource(tissue_image(192, 192, seed=4))
    model = TinyModel()
    job = InferenceJob(source, model, device="cpu", overlap=0.5, tissue_threshold=0, batch_size=16)
    batches = all_batches(job)
    grid = batches[0].grid
    assert grid.l0_stride == 16 and (grid.p_cols, grid.p_rows) == (11, 11)
    raw = np.full((2, grid.p_rows, grid.p_cols), np.nan)
    for batch in batches:
        for (col, row), (l0_x, l0_y), p in zip(batch.p_ij, batch.l0_xy, batch.probs, strict=True):
            direct = model.direct(source.read_region(0, l0_x, l0_y, 32, 32))
            np.testing.assert_allclose(p, direct, atol=1e-5)
            raw[:, row, col] = p
    result = collect(batches)
    assert isinstance(result, ResultGrid)
    w = np.array([0.5, 1.0, 0.5])
    kernel = np.outer(w, w)
    expected = (raw[:, 4:7, 4:7] * kernel).sum(axis=(1, 2)) / kernel.sum()
    np.testing.assert_allclose(result.probabilities()[:, 5, 5], expected, atol=1e-6)
    assert result.cell_l0_origin() == (8.0, 8.0)


# -- ordering, cancel, threads ---------------------------------------------------------------


def test_region_first_then_the_rest() -> None:
    source = ArraySource(tissue_image(320, 320, seed=5))
    region = Rect(250, 250, 60, 60)
    job = InferenceJob(
        source, TinyModel(), device="cpu", batch_size=4, region=region, tissue_threshold=0
    )
    batches = all_batches(job)
    first = {tuple(p) for p in batches[0].p_ij}
    assert first == {(8, 8), (9, 8), (8, 9), (9, 9)}
    assert sum(len(b) for b in batches) == 100
    only = all_batches(
        InferenceJob(
            source, TinyModel(), device="cpu", region=region, only_region=True, tissue_threshold=0
        )
    )
    assert sum(len(b) for b in only) == 9 and only[0].grid.l0_origin == (224, 224)


@pytest.mark.parametrize("lanes", [1, 2])
def test_cancel_between_batches_and_no_reader_threads_left(lanes: int) -> None:
    source = ArraySource(tissue_image(512, 512, seed=6))
    cancel = threading.Event()
    job = InferenceJob(
        source, TinyModel(), device="cpu", batch_size=4, tissue_threshold=0, cpu_lanes=lanes
    )
    got = []
    for batch in run(job, cancel=cancel):
        got.append(batch)
        cancel.set()
    assert len(got) == 1 and got[0].done == 4 and got[0].total == 256
    assert reader_threads() == []
    assert source.reads < 256  # readers stopped well before the end


@pytest.mark.parametrize("lanes", [1, 2])
def test_closing_the_generator_stops_the_readers(lanes: int) -> None:
    source = ArraySource(tissue_image(512, 512, seed=6))
    gen: Iterator[BatchResult] = run(
        InferenceJob(
            source,
            TinyModel(),
            device="cpu",
            batch_size=4,
            tissue_threshold=0,
            num_readers=2,
            cpu_lanes=lanes,
        )
    )
    next(gen)
    assert reader_threads()  # reading ahead
    gen.close()  # type: ignore[attr-defined]
    assert reader_threads() == []


class _SeesThreads(torch.nn.Module):
    """Records, for every forward pass, the thread running it and its torch threads."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.seen: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((threading.get_ident(), torch.get_num_threads()))
        return self.inner(x)


def _forwards_seen(**kwargs: Any) -> list[tuple[int, int]]:
    model = TinyModel()
    spy = _SeesThreads(model.module)
    model.module = spy
    job = InferenceJob(
        ArraySource(tissue_image(256, 256)),
        model,
        device="cpu",
        batch_size=4,
        tissue_threshold=0,
        **kwargs,
    )
    for _ in run(job):
        pass
    return spy.seen


def test_cpu_lanes_run_batches_side_by_side_with_their_own_torch_threads() -> None:
    from inference.engine.cores import available_cores

    before = torch.get_num_threads()
    caller = threading.get_ident()
    seen = _forwards_seen(cpu_lanes=2)
    assert len(seen) == 16
    lanes = {thread for thread, _ in seen}
    assert caller not in lanes and 1 <= len(lanes) <= 2
    assert {threads for _, threads in seen} == {max(1, available_cores() // 2)}
    assert {threads for _, threads in _forwards_seen(cpu_lanes=2, torch_threads=3)} == {3}
    assert torch.get_num_threads() == before  # the caller's own setting is untouched


def test_one_lane_runs_the_model_on_the_caller_with_every_core_then_restores() -> None:
    from inference.engine.cores import available_cores

    before = torch.get_num_threads()
    caller = threading.get_ident()
    seen = _forwards_seen(cpu_lanes=1, num_readers=1)
    assert {thread for thread, _ in seen} == {caller}
    assert {threads for _, threads in seen} == {available_cores()}
    assert {t for _, t in _forwards_seen(cpu_lanes=1, torch_threads=1)} == {1}
    assert torch.get_num_threads() == before


def test_lanes_and_one_at_a_time_give_the_same_results_in_the_same_order() -> None:
    source = ArraySource(tissue_image(384, 256, seed=11))
    region = Rect(200, 100, 64, 64)

    def batches(lanes: int) -> list[BatchResult]:
        job = InferenceJob(
            source, TinyModel(), device="cpu", batch_size=5, region=region, cpu_lanes=lanes
        )
        return all_batches(job)

    one, three = batches(1), batches(3)
    assert [b.p_ij.tolist() for b in one] == [b.p_ij.tolist() for b in three]
    assert [b.done for b in one] == [b.done for b in three]
    for a, b in zip(one, three, strict=True):
        np.testing.assert_allclose(a.probs, b.probs, atol=1e-6)


# -- failures -------------------------------------------------------------------------------


class _OomOverTwo(torch.nn.Module):
    """Records the batch of every call; fails like a full GPU on more than two patches."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(len(x))
        if len(x) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (test)")
        return self.inner(x)


def test_out_of_memory_halves_the_batch_and_goes_on() -> None:
    source = ArraySource(tissue_image(256, 64, seed=7))
    model = TinyModel()
    oom = _OomOverTwo(model.module)
    model.module = oom
    # one lane: the calls come in a known order (halving is for CUDA, where there is one)
    batches = all_batches(
        InferenceJob(source, model, device="cpu", batch_size=8, tissue_threshold=0, cpu_lanes=1)
    )
    assert sum(len(b) for b in batches) == 16
    assert oom.calls[:4] == [8, 4, 2, 2] and max(oom.calls[4:]) == 2
    for batch in batches:
        for (l0_x, l0_y), p in zip(batch.l0_xy, batch.probs, strict=True):
            np.testing.assert_allclose(
                p, model.direct(source.read_region(0, l0_x, l0_y, 32, 32)), atol=1e-5
            )


def test_the_cpu_computes_a_batch_of_large_patches_in_cache_sized_chunks() -> None:
    from inference.engine.forward import Forward, cpu_chunk_patches

    model = TinyModel()
    oom = _OomOverTwo(model.module)  # records the size of every forward pass
    model.module = oom
    rgb = np.random.default_rng(0).integers(0, 256, (5, 256, 256, 3), np.uint8)
    assert cpu_chunk_patches(256, 256) == 2
    chunked = Forward(model, "cpu", None)(host_batch(rgb))
    assert oom.calls == [2, 2, 1]
    with torch.no_grad():
        whole = model.postprocess(model.module.inner(model.preprocess(rgb))).numpy()
    np.testing.assert_allclose(chunked, whole, atol=1e-6)
    assert cpu_chunk_patches(32, 32) == 128 and cpu_chunk_patches(1024, 1024) == 1


def test_unreadable_patches_are_reported_and_the_rest_computed() -> None:
    source = ArraySource(tissue_image(128, 64), bad_l0_rect=Rect(40, 40, 4, 4))
    batches = all_batches(InferenceJob(source, TinyModel(), device="cpu", tissue_threshold=0))
    unreadable = np.concatenate([b.unreadable_p_ij for b in batches])
    assert unreadable.tolist() == [[1, 1]]
    assert sum(len(b) for b in batches) == 7


# -- segmentation ---------------------------------------------------------------------------


def test_segmentation_tiles_match_direct_and_blend() -> None:
    source = ArraySource(tissue_image(128, 96, seed=8))
    model = TinyModel(TinyCard(task="segmentation", class_names=("a", "b", "c")))
    job = InferenceJob(
        source, model, device="cpu", tissue_threshold=0, seg_tile_px=16, batch_size=6
    )
    batches = all_batches(job)
    grid = batches[0].grid
    assert grid.l0_stride == 24  # default segmentation overlap 0.25
    assert batches[0].l0_per_px == 2.0
    for batch in batches:
        assert batch.probs.shape[1:] == (3, 16, 16)
        for (l0_x, l0_y), tile in zip(batch.l0_xy, batch.probs, strict=True):
            rgb = source.read_region(0, l0_x, l0_y, 32, 32)
            with torch.no_grad():
                full = model.postprocess(model.module(model.preprocess(rgb[None])))
                ref = torch.nn.functional.interpolate(full, size=(16, 16), mode="area")[0]
            np.testing.assert_allclose(tile, ref.numpy(), atol=1e-5)
    seg = collect(batches)
    assert isinstance(seg, SegmentationMap)
    probs = seg.probabilities()
    assert probs.shape == (3, 52, 64)
    assert not np.isnan(probs).any()
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-5)


def test_prepare_reports_params_for_the_cache_key() -> None:
    source = ArraySource(tissue_image(128, 128))
    with prepare(InferenceJob(source, TinyModel(), device="cpu", overlap=0.25)) as prepared:
        params = prepared.params()
    assert params["grid"]["l0_stride"] == 24 and params["precision"] == "fp32"
    assert params["mpp"] == 0.5 and params["task"] == "classification"


# -- with real model folders and slide files -------------------------------------------------


def _write_tiff(path: Path, rgb: np.ndarray, mpp: float) -> Path:
    import tifffile

    with tifffile.TiffWriter(path) as tif:
        for level, data in enumerate([rgb, rgb[::2, ::2]]):
            tif.write(
                np.ascontiguousarray(data),
                tile=(256, 256),
                photometric="rgb",
                compression="zlib",
                subfiletype=1 if level else 0,
                resolution=(1e4 / (mpp * 2**level),) * 2,
                resolutionunit="CENTIMETER",
            )
    return path


def test_job_from_paths_matches_the_loaded_model_directly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import inference.slides
    from inference.models import load_model

    slide = _write_tiff(tmp_path / "s.tiff", tissue_image(512, 384, seed=9), mpp=1.0)
    folder = write_model_folder(tmp_path / "m")
    opened: list[Any] = []
    real_open = inference.slides.open_slide

    def spy(path: Any) -> Any:
        opened.append(real_open(path))
        return opened[-1]

    monkeypatch.setattr(inference.slides, "open_slide", spy)
    job = InferenceJob(slide, folder, device="cpu", batch_size=8, tissue_threshold=0)
    batches = all_batches(job)
    assert len(opened) == 1
    with pytest.raises(inference.slides.SlideClosedError):
        opened[0].read_region(0, 0, 0, 4, 4)  # the engine closed what it opened

    model = load_model(folder)
    source = real_open(slide)
    try:
        for batch in batches:
            for (l0_x, l0_y), probs in zip(batch.l0_xy, batch.probs, strict=True):
                rgb = source.read_region(0, l0_x, l0_y, 64, 64)
                with torch.no_grad():
                    ref = model.postprocess(model.module(model.preprocess(rgb[None])))[0]
                np.testing.assert_allclose(probs, ref.numpy(), atol=1e-5)
    finally:
        source.close()
    assert sum(len(b) for b in batches) == 8 * 6

"""Patch embeddings from the engine's forward pass: the same probabilities, one pass per
patch, the penultimate layer or a named one, stored with the result (float16) in the
cache and the result archive, and reused by the slide-level answer without running the
patch model again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from inference.engine.embedding import attach_tap
from inference.engine.job import InferenceError, InferenceJob
from inference.engine.prepare import prepare
from inference.engine.runner import run
from inference.results.cache import ResultCache
from inference.results.exports import read_result_extras, read_result_npz, write_result_npz
from inference.results.store import ResultGrid, collect
from inference.slide_level.aggregate import Aggregator
from inference.slide_level.spec import parse_aggregation
from tests.helpers.models import TinyCard, TinyModel
from tests.helpers.slides import ArraySource, tissue_image

torch.set_num_threads(1)


class CountingModel(TinyModel):
    """TinyModel whose module counts the patches every forward pass sees."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.patches_seen = 0

        def count(_module: Any, inputs: Any) -> None:
            self.patches_seen += int(inputs[0].shape[0])

        self.module.register_forward_pre_hook(count)


def source() -> ArraySource:
    return ArraySource(tissue_image(320, 224, seed=1, tissue_cols=0.8))


def result_of(model: TinyModel, **job: Any) -> ResultGrid:
    options: dict[str, Any] = {"device": "cpu", "tissue_threshold": 0.0, "batch_size": 7}
    result = collect(run(InferenceJob(slide=source(), model=model, **{**options, **job})))
    assert isinstance(result, ResultGrid)
    return result


@pytest.mark.parametrize("lanes", [1, 2])
def test_embeddings_change_no_probability_and_cost_no_second_pass(lanes: int) -> None:
    model = CountingModel()
    plain = result_of(model, cpu_lanes=lanes)
    passes_plain = model.patches_seen
    model.patches_seen = 0
    with_embeddings = result_of(model, cpu_lanes=lanes, embeddings=True)
    assert model.patches_seen == passes_plain == plain.grid.count  # one pass per patch
    assert np.array_equal(plain.patch_probs, with_embeddings.patch_probs, equal_nan=True)
    assert plain.embeddings is None
    embeddings = with_embeddings.embeddings
    assert embeddings is not None and len(embeddings) == plain.grid.count
    assert embeddings.matrix().dtype == np.float16 and embeddings.width == 4
    assert embeddings.layer == "penultimate:4"  # the input of the last Linear


def test_penultimate_embedding_is_the_classifier_input() -> None:
    model = TinyModel()
    result = result_of(model, embeddings=True)
    assert result.embeddings is not None
    p_ij = result.embeddings.p_ij()
    reader_src = source()
    grid = result.grid
    # the reference: the module up to its last Linear, on each patch read alone
    for k in (0, 5, len(p_ij) - 1):
        col, row = p_ij[k]
        rect = grid.patch_l0_rect(int(col), int(row))
        rgb = reader_src.read_region(0, int(rect.x), int(rect.y), 32, 32)
        with torch.no_grad():
            x = model.preprocess(rgb[None])
            features = model.module[:4](x)[0].numpy()
        stored = result.embeddings.matrix()[k].astype(np.float32)
        assert stored == pytest.approx(features, abs=2e-3)  # float16 storage


def test_a_named_layer_is_pooled_over_space() -> None:
    model = TinyModel()
    result = result_of(model, embeddings=True, embedding_layer="1")  # ReLU maps (N, 4, h, w)
    assert result.embeddings is not None and result.embeddings.layer == "1"
    assert result.embeddings.width == 4
    assert (result.embeddings.matrix() >= 0).all()
    with pytest.raises(InferenceError, match="no layer 'nope'"):
        result_of(model, embeddings=True, embedding_layer="nope")


def test_a_module_that_returns_logits_and_embeddings_needs_no_hook() -> None:
    class Both(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Sequential(
                torch.nn.Conv2d(3, 5, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
            )
            self.fc = torch.nn.Linear(5, 2)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            h = self.body(x)
            return self.fc(h), h * 10

    model = TinyModel()
    model.module = Both().eval()
    result = result_of(model, embeddings=True)
    assert result.embeddings is not None
    # the module's own second output wins over the hook on its last Linear's input
    assert np.abs(result.embeddings.matrix()).max() > 0
    with torch.no_grad():
        x = model.preprocess(source().read_region(0, 0, 0, 32, 32)[None])
        own = model.module(x)[1][0].numpy()
    assert result.embeddings.matrix()[0].astype(np.float32) == pytest.approx(own, rel=2e-3)


def test_segmentation_and_hookless_models_give_no_embeddings() -> None:
    seg = TinyModel(TinyCard(task="segmentation", class_names=("tumour",)))
    with pytest.raises(InferenceError, match="classification models only"):
        result_of(seg, embeddings=True)
    with pytest.raises(InferenceError, match="no Linear"):
        attach_tap(torch.nn.Conv2d(3, 2, 1), None)


def test_the_hook_is_removed_when_the_job_closes() -> None:
    model = TinyModel()
    linear = model.module[4]
    with prepare(InferenceJob(slide=source(), model=model, device="cpu", embeddings=True)) as job:
        job.forward  # noqa: B018
        assert len(linear._forward_pre_hooks) == 1
        assert "embeddings" in job.params()
    assert len(linear._forward_pre_hooks) == 0


def test_embeddings_survive_the_cache_and_the_result_archive(tmp_path: Path) -> None:
    result = result_of(TinyModel(), embeddings=True)
    assert result.embeddings is not None
    cache = ResultCache(tmp_path / "cache")
    cache.save("ab" * 32, result, {"source_id": "x"})
    loaded = cache.load("ab" * 32)
    assert loaded is not None and loaded.result.embeddings is not None
    assert np.array_equal(loaded.result.embeddings.matrix(), result.embeddings.matrix())
    assert np.array_equal(loaded.result.embeddings.p_ij(), result.embeddings.p_ij())
    path = tmp_path / "r.result.npz"
    maps = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    write_result_npz(path, result, extra={"attention": maps})
    again = read_result_npz(path)
    assert again.embeddings is not None and again.embeddings.layer == result.embeddings.layer
    assert np.array_equal(again.embeddings.matrix(), result.embeddings.matrix())
    assert np.array_equal(read_result_extras(path)["attention"], maps)


def test_the_slide_level_answer_reads_stored_embeddings_and_never_runs_the_model(
    tmp_path: Path,
) -> None:
    from safetensors.torch import save_file

    from inference.slide_level.head_loading import load_head
    from inference.slide_level.heads import abmil_class

    model = CountingModel()
    result = result_of(model, embeddings=True)
    path = tmp_path / "r.result.npz"
    write_result_npz(path, result)
    seen = model.patches_seen
    torch.manual_seed(0)
    save_file(abmil_class()(4, 3, 2).state_dict(), str(tmp_path / "h.safetensors"))
    head = load_head("abmil", tmp_path / "h.safetensors")
    aggregator = Aggregator(
        parse_aggregation({"type": "abmil", "weights": "h.safetensors"}, "t"), head
    )
    answer = aggregator(read_result_npz(path))
    assert model.patches_seen == seen  # the patch model did not run again
    assert answer.maps is not None and float(answer.maps.sum()) == pytest.approx(1.0, abs=1e-5)

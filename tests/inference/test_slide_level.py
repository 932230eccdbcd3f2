"""Slide-level answers: rule aggregators against hand-computed values, MIL heads loaded
safely (safetensors yes, pickles with code no, TorchScript only with trust), attention
that sums to one, the answer in slide.json, and similarity search against brute force."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from inference.engine.patches import PatchGrid
from inference.evaluation.slide_labels import read_predicted_label
from inference.models.errors import ModelLoadError, UntrustedModelError
from inference.models.registry import is_slide_head, list_models, list_slide_heads
from inference.models.trust import TrustStore
from inference.results.embeddings import PatchEmbeddings
from inference.results.store import ResultGrid
from inference.slide_level.aggregate import AggregationFailed, Aggregator, card_aggregator
from inference.slide_level.head_card import SlideHeadError, load_head_card
from inference.slide_level.head_loading import LoadedHead, load_head
from inference.slide_level.heads import abmil_class, clam_class, conv_pool_class
from inference.slide_level.pipeline import resolve_pipeline
from inference.slide_level.rules import RuleError, apply_rule, rule_scores
from inference.slide_level.similarity import SimilarityIndex, brute_force_top
from inference.slide_level.slide_json import write_slide_answer
from inference.slide_level.spec import AggregationError, AggregationSpec, parse_aggregation
from tests.inference.test_safe_loading import MarkerPayload

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _no_grad() -> Any:
    """Heads run as inference runs them: without autograd."""
    with torch.no_grad():
        yield


#: Four patches of a two-class model: P(tumour) per patch.
P_TUMOUR = np.array([0.1, 0.9, 0.6, 0.2])
PROBS = np.stack([1 - P_TUMOUR, P_TUMOUR], axis=1)
P_IJ = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.int32)
NAMES = ("other", "tumour")


def spec(kind: str, **kwargs: Any) -> AggregationSpec:
    return parse_aggregation({"type": kind, **kwargs}, "test")


# -- rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "params", "tumour_score", "label"),
    [
        ("mean", {}, 0.45, "other"),  # (0.1 + 0.9 + 0.6 + 0.2) / 4
        ("max", {}, 0.9, "tumour"),
        ("top_k_mean", {"k": 2}, 0.75, "tumour"),  # (0.9 + 0.6) / 2
        ("top_k_mean", {"k": 10}, 0.45, "other"),  # k above n: all patches
        ("quantile", {"q": 0.5}, 0.4, "other"),  # median of 0.1 0.2 0.6 0.9
        ("quantile", {"q": 0.75}, 0.675, "tumour"),  # 0.6 + 0.25 * (0.9 - 0.6)
        ("area_fraction", {"patch_threshold": 0.5}, 0.5, "tumour"),  # 2 of 4 at >= 0.5
        ("area_fraction", {"patch_threshold": 0.7}, 0.25, "other"),
        ("majority", {}, 0.5, "tumour"),  # other, tumour, tumour, other: a tie reaches 0.5
    ],
)
def test_rules_give_hand_computed_scores_and_labels(
    kind: str, params: dict[str, Any], tumour_score: float, label: str
) -> None:
    answer = apply_rule(PROBS, P_IJ, NAMES, spec(kind, **params))
    assert answer.aggregation["scores"]["tumour"] == pytest.approx(tumour_score)
    assert answer.label == label
    assert answer.probabilities == pytest.approx([1 - tumour_score, tumour_score])
    keys = answer.slide_keys()
    assert keys["slide_label"] == label
    assert keys["slide_probabilities"] == pytest.approx(
        {"other": 1 - tumour_score, "tumour": tumour_score}
    )
    assert keys["aggregation"]["type"] == kind
    # the gallery ranks by the deciding class's probability
    assert answer.top_patches(2).tolist() == [1, 2]


def test_rule_scores_for_every_class_and_the_decision_threshold() -> None:
    assert rule_scores(PROBS, spec("max")) == pytest.approx([0.9, 0.9])
    assert rule_scores(PROBS, spec("mean")) == pytest.approx([0.55, 0.45])
    strict = apply_rule(PROBS, P_IJ, NAMES, spec("max", decision_threshold=0.95))
    assert strict.label == "other"


def test_three_classes_take_the_best_score_and_normalise() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]])
    names = ("a", "b", "c")
    mean = apply_rule(probs, P_IJ[:3], names, spec("mean"))
    assert mean.aggregation["scores"] == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    majority = apply_rule(probs, P_IJ[:3], names, spec("majority"))
    assert majority.probabilities == pytest.approx([1 / 3, 1 / 3, 1 / 3])
    maxed = apply_rule(probs, P_IJ[:3], names, spec("max"))  # 0.7, 0.5, 0.6
    assert maxed.label == "a"
    assert maxed.probabilities == pytest.approx(np.array([0.7, 0.5, 0.6]) / 1.8)
    chosen = apply_rule(probs, P_IJ[:3], names, spec("max", positive_class="c"))
    assert chosen.label == "c" and chosen.probabilities == pytest.approx([0.4, 0.0, 0.6])


def test_one_output_model_answers_class_or_no_class() -> None:
    answer = apply_rule(P_TUMOUR[:, None], P_IJ, ("tumour",), spec("max", decision_threshold=0.95))
    assert answer.class_names == ("no tumour", "tumour")
    assert answer.label == "no tumour" and answer.probability == pytest.approx(0.1)


def test_rules_refuse_what_they_cannot_answer() -> None:
    with pytest.raises(RuleError, match="not a class of the model"):
        apply_rule(PROBS, P_IJ, NAMES, spec("max", positive_class="stroma"))
    with pytest.raises(RuleError, match="no computed patches"):
        apply_rule(np.zeros((0, 2)), P_IJ[:0], NAMES, spec("mean"))
    with pytest.raises(AggregationError) as caught:
        parse_aggregation({"type": "median", "k": 0, "q": 2, "colour": 1}, "card.json")
    message = str(caught.value)
    assert "card.json" in message and "'type'" in message and "'k'" in message
    assert "'q'" in message and "colour" in message
    with pytest.raises(AggregationError, match="needs its weights file"):
        parse_aggregation({"type": "abmil"}, "card.json")


# -- heads -------------------------------------------------------------------------------


def abmil_state(seed: int = 0, width: int = 6, classes: int = 2) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return abmil_class()(width, 4, classes, hidden=5).state_dict()


def clam_state(*, multi: bool, seed: int = 0, width: int = 6) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    module = clam_class()(
        width, 8, 4, 3, multi_branch=multi, branches=3 if multi else 1, instance_classifiers=True
    )
    return module.state_dict()


def write_safetensors(path: Path, state: dict[str, torch.Tensor]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def test_abmil_from_safetensors_matches_the_formula(tmp_path: Path) -> None:
    state = abmil_state()
    head = load_head("abmil", write_safetensors(tmp_path / "mil.safetensors", state))
    assert head.kind == "eager" and len(head.sha256) == 64
    h = torch.randn(7, 6, generator=torch.Generator().manual_seed(1))
    logits, attention = head.module(h)
    # Ilse et al.: a = softmax(w^T (tanh(V h) * sigm(U h))), z = sum a h, y = W z
    hh = torch.relu(h @ state["fc.0.weight"].T + state["fc.0.bias"])
    v = torch.tanh(hh @ state["attention_V.weight"].T + state["attention_V.bias"])
    u = torch.sigmoid(hh @ state["attention_U.weight"].T + state["attention_U.bias"])
    raw = (v * u) @ state["attention_w.weight"].T + state["attention_w.bias"]
    a = torch.softmax(raw[:, 0], dim=0)
    expected = (a @ hh) @ state["classifier.weight"].T + state["classifier.bias"]
    assert torch.allclose(attention[0], a, atol=1e-6)
    assert torch.allclose(logits[0], expected, atol=1e-5)
    assert float(attention.sum()) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("multi", [False, True])
def test_clam_sb_and_mb_load_in_clams_key_names(tmp_path: Path, multi: bool) -> None:
    state = clam_state(multi=multi)
    assert "attention_net.3.attention_a.0.weight" in state
    assert ("classifiers.1.weight" in state) == multi
    head = load_head("clam", write_safetensors(tmp_path / "clam.safetensors", state))
    logits, attention = head.module(torch.randn(9, 6))
    assert logits.shape == (1, 3)
    assert attention.shape == ((3, 9) if multi else (1, 9))
    assert torch.allclose(attention.sum(dim=1), torch.ones(len(attention)), atol=1e-6)


def test_clam_sb_matches_the_formula(tmp_path: Path) -> None:
    state = clam_state(multi=False)
    head = load_head("clam", write_safetensors(tmp_path / "sb.safetensors", state))
    h = torch.randn(5, 6, generator=torch.Generator().manual_seed(2))
    logits, attention = head.module(h)
    # CLAM-SB: h' = relu(W1 h); a = softmax(Wc (tanh(Wa h') * sigm(Wb h'))); y = Wcls (a h')
    hh = torch.relu(h @ state["attention_net.0.weight"].T + state["attention_net.0.bias"])
    net = "attention_net.3."
    a_ = torch.tanh(hh @ state[net + "attention_a.0.weight"].T + state[net + "attention_a.0.bias"])
    b_ = torch.sigmoid(
        hh @ state[net + "attention_b.0.weight"].T + state[net + "attention_b.0.bias"]
    )
    raw = (a_ * b_) @ state[net + "attention_c.weight"].T + state[net + "attention_c.bias"]
    a = torch.softmax(raw[:, 0], dim=0)
    expected = (a @ hh) @ state["classifiers.weight"].T + state["classifiers.bias"]
    assert torch.allclose(attention[0], a, atol=1e-6)
    assert torch.allclose(logits[0], expected, atol=1e-5)


def test_a_pickle_with_code_is_refused_as_a_head_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    state: dict[str, Any] = dict(abmil_state())
    state["classifier.weight"] = MarkerPayload(marker)
    torch.save(state, tmp_path / "model.pt")
    with pytest.raises(ModelLoadError, match="refused: this file contains code"):
        load_head("abmil", tmp_path / "model.pt")
    assert not marker.exists()
    with (tmp_path / "legacy.bin").open("wb") as handle:
        pickle.dump(state, handle)
    with pytest.raises(ModelLoadError, match="refused"):
        load_head("abmil", tmp_path / "legacy.bin")
    assert not marker.exists()


def test_head_weights_of_another_kind_are_named(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "h.safetensors", abmil_state())
    with pytest.raises(ModelLoadError, match="not the weights of a clam head"):
        load_head("clam", path)


def test_torchscript_head_needs_trust_remembered_by_hash(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = abmil_class()(6, 4, 2)
    path = tmp_path / "head" / "torchscript_model.pt"
    path.parent.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(module).save(str(path))
    store = TrustStore(tmp_path / "trust.json")
    with pytest.raises(UntrustedModelError, match="refused"):
        load_head("abmil", path, trust_store=store)
    trusted = load_head("abmil", path, trust=True, trust_store=store)
    assert trusted.kind == "torchscript"
    again = load_head("abmil", path, trust_store=store)  # remembered
    logits, attention = again.module(torch.randn(5, 6))
    assert logits.shape == (1, 2) and float(attention.sum()) == pytest.approx(1.0, abs=1e-6)


def test_conv_pool_averages_class_activation_over_computed_patches(tmp_path: Path) -> None:
    module = conv_pool_class()([(2, 3, 1)], 2)
    with torch.no_grad():
        module.convs[0].weight.zero_()
        module.convs[0].bias.zero_()
        for c in range(2):
            module.convs[0].weight[c, c, 0, 0] = 1.0  # channel c copies input c
        module.classifier.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 2.0, 0]]))
        module.classifier.bias.copy_(torch.tensor([0.0, 0.5]))
    head = load_head(
        "conv_pool", write_safetensors(tmp_path / "c.safetensors", module.state_dict())
    )
    grid = torch.tensor([[[0.2, 0.4], [0.9, 0.0]], [[0.8, 0.6], [0.1, 0.0]]])[None]
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])[None, None]
    logits, cam = head.module(grid, mask)
    # computed patches (row by row): (0.2, 0.8), (0.4, 0.6), (0.9, 0.1)
    assert cam[0].tolist() == pytest.approx([0.2, 0.4, 0.9])
    assert cam[1].tolist() == pytest.approx([2 * 0.8 + 0.5, 2 * 0.6 + 0.5, 2 * 0.1 + 0.5])
    assert logits[0].tolist() == pytest.approx([0.5, 2 * 1.5 / 3 + 0.5])


# -- aggregators over results ------------------------------------------------------------


def grid_result(n_cols: int = 4, n_rows: int = 3, width: int = 6, seed: int = 0) -> ResultGrid:
    """A classification result with embeddings for every patch but one."""
    rng = np.random.default_rng(seed)
    grid = PatchGrid(l0_patch=64, l0_stride=64, l0_origin=(0, 0), p_cols=n_cols, p_rows=n_rows)
    result = ResultGrid(grid, NAMES)
    p_ij = grid.all_p_ij()[1:]
    p = rng.uniform(0, 1, len(p_ij))
    result.patch_probs[:, p_ij[:, 1], p_ij[:, 0]] = np.stack([1 - p, p])
    result.embeddings = PatchEmbeddings(n_rows, n_cols, width, "penultimate:test")
    result.embeddings.add(p_ij, rng.normal(size=(len(p_ij), width)))
    return result


def test_abmil_attention_sums_to_one_over_the_slides_patches(tmp_path: Path) -> None:
    head = load_head("abmil", write_safetensors(tmp_path / "m.safetensors", abmil_state()))
    aggregator = Aggregator(spec("abmil", weights="m.safetensors"), head)
    result = grid_result()
    answer = aggregator(result)
    assert answer.maps is not None and answer.maps.shape == (1, result.grid.count - 1)
    assert float(answer.maps.sum()) == pytest.approx(1.0, abs=1e-5)
    assert answer.map_kind == "attention" and answer.map_names == ("attention",)
    assert answer.probabilities.sum() == pytest.approx(1.0)
    grid = answer.map_grid(result.grid.p_rows, result.grid.p_cols)
    assert grid is not None and np.isnan(grid[0, 0, 0]) and np.nansum(grid) == pytest.approx(1.0)
    assert answer.slide_keys()["aggregation"]["weights_sha256"] == head.sha256


def test_a_head_without_embeddings_says_so() -> None:
    result = grid_result()
    result.embeddings = None
    torch.manual_seed(0)
    module = abmil_class()(6, 4, 2)
    aggregator = Aggregator(
        spec("abmil", weights="x.safetensors"), LoadedHead(module, "eager", Path("x"), "0")
    )
    with pytest.raises(AggregationFailed, match="has none"):
        aggregator(result)


def test_card_declares_a_rule_and_a_head(tmp_path: Path) -> None:
    from inference.models.card import load_card
    from tests.helpers.models import write_model_folder

    folder = write_model_folder(tmp_path / "m")
    card = json.loads((folder / "config.json").read_text())
    card["slidelens"]["aggregation"] = {"type": "top_k_mean", "k": 2}
    (folder / "config.json").write_text(json.dumps(card))
    aggregator = card_aggregator(load_card(folder))
    assert aggregator is not None and aggregator.spec.type == "top_k_mean"
    assert not aggregator.needs_embeddings
    answer = aggregator(grid_result())
    assert answer.aggregation["k"] == 2 and answer.aggregation["declared_in"].endswith(
        "config.json"
    )

    write_safetensors(folder / "mil.safetensors", abmil_state())
    card["slidelens"]["aggregation"] = {"type": "abmil", "weights": "mil.safetensors"}
    card["slidelens"]["embedding_layer"] = "classifier.2"
    (folder / "config.json").write_text(json.dumps(card))
    head = card_aggregator(load_card(folder))
    assert head is not None and head.needs_embeddings and head.embedding_layer == "classifier.2"
    assert head(grid_result()).label in NAMES


def write_head_folder(folder: Path, **changes: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "spec_version": "1.0",
        "type": "abmil",
        "num_classes": 2,
        "class_names": ["negative", "positive"],
        "feature_extractor": "demo-tumour-classifier",
        "patch_size_um": 128,
        "slidelens": {"aggregation": {"gallery": 4}, "description": "test head"},
        **changes,
    }
    (folder / "config.json").write_text(json.dumps(config))
    write_safetensors(folder / "model.safetensors", abmil_state(width=128))
    return folder


def test_wsinfer_mil_style_head_folder_resolves_to_its_feature_extractor(tmp_path: Path) -> None:
    folder = write_head_folder(tmp_path / "head")
    assert is_slide_head(folder)
    card = load_head_card(folder)
    assert (
        card.type == "abmil" and card.spec.gallery == 4 and card.spec.weights == "model.safetensors"
    )
    pipeline = resolve_pipeline(folder)
    assert pipeline.patch_folder.name == "demo-tumour-classifier"
    assert pipeline.aggregator is not None and pipeline.aggregator.needs_embeddings
    wrong = write_head_folder(tmp_path / "wrong", patch_size_um=256)
    with pytest.raises(SlideHeadError, match="patch_size_um"):
        resolve_pipeline(wrong)
    bad = write_head_folder(tmp_path / "bad", type="porpoise", num_classes=3)
    with pytest.raises(SlideHeadError) as caught:
        load_head_card(bad)
    assert "field 'type'" in str(caught.value) and "num_classes" in str(caught.value)


def test_bundled_heads_are_not_listed_as_patch_models() -> None:
    assert all(not is_slide_head(entry.folder) for entry in list_models())
    assert "demo-tumour-mil" in [folder.name for folder in list_slide_heads()]


# -- slide.json ----------------------------------------------------------------------------


def test_slide_json_keeps_other_keys_and_gains_the_answer(tmp_path: Path) -> None:
    result = grid_result()
    answer = Aggregator(spec("max"))(result)
    path = tmp_path / "s.slide.json"
    report = write_slide_answer(path, answer, result, mpp=0.5, slide="s.tiff")
    assert report["slidelens_slide_report"] == 1 and report["slide_label"] == answer.label
    doc = json.loads(path.read_text())
    doc["isup_grade"] = 3  # the grading keys of the same run stay
    path.write_text(json.dumps(doc))
    write_slide_answer(path, answer, result, mpp=0.5)
    again = json.loads(path.read_text())
    assert again["isup_grade"] == 3
    assert read_predicted_label(path) == (answer.label, again["slide_probabilities"])


# -- similarity ------------------------------------------------------------------------------


def test_similarity_search_is_exact_against_brute_force() -> None:
    rng = np.random.default_rng(4)
    embeddings = rng.normal(size=(3000, 32)).astype(np.float16)
    embeddings[17] = 0  # a zero row is similar to nothing
    index = SimilarityIndex(embeddings)
    for row in (0, 5, 1234, 2999):
        hits = index.query(row, 10)
        reference = brute_force_top(embeddings, row, 10)
        assert hits.top.tolist() == reference.tolist()
        x = embeddings.astype(np.float64)
        cos = x @ x[row] / (np.linalg.norm(x, axis=1).clip(1e-12) * np.linalg.norm(x[row]))
        assert hits.similarity == pytest.approx(cos, abs=1e-5)
        assert hits.top_similarity.tolist() == sorted(hits.top_similarity.tolist(), reverse=True)
        assert row not in hits.top.tolist()
    assert index.query(17, 5).top_similarity == pytest.approx([0.0] * 5)
    assert index.query(3, 5, include_self=True).top[0] == 3
    vector_hits = index.query(embeddings[3].astype(np.float32), 5)
    assert vector_hits.top[0] == 3


def test_similarity_ties_break_by_row_and_small_sets() -> None:
    same = np.ones((6, 4), np.float32)
    assert SimilarityIndex(same).query(2, 3).top.tolist() == [0, 1, 3]
    assert SimilarityIndex(same[:1]).query(0, 10).top.tolist() == []


# -- the bundled demo head -------------------------------------------------------------------


def test_bundled_mil_head_is_honest_about_what_it_is() -> None:
    from inference.models.demo.mil import MIL_HELDOUT, MIL_NAME, MIL_TRAIN
    from inference.models.registry import bundled_models_dir

    folder = bundled_models_dir() / MIL_NAME
    card = load_head_card(folder)
    assert card.type == "abmil" and card.class_names == ("no tumour", "tumour")
    assert card.feature_extractor == "demo-tumour-classifier"
    for text in (card.description, card.intended_use):
        assert "NOT FOR DIAGNOSIS" in text and "slidelens synth" in text
    assert card.domain.for_diagnosis is False
    assert card.metrics["slide_auc"] >= 0.9
    assert card.metrics["similarity_precision_at_10"] >= 0.8
    training = card.training
    trained = {s["seed"] for s in training["training_slides"]}
    held_out = {s["seed"] for s in training["heldout_slides"]}
    assert trained == {s.seed for s in MIL_TRAIN} and held_out == {s.seed for s in MIL_HELDOUT}
    assert not trained & held_out and len(held_out) == 12
    assert training["heldout"]["tumour_slides"] == 6
    assert training["total_seconds"] <= 600
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors"}
    pipeline = resolve_pipeline(MIL_NAME)
    assert pipeline.aggregator is not None and pipeline.aggregator.head is not None
    assert pipeline.aggregator.head.kind == "eager"

"""The headless slide-level commands end to end on small synthetic slides: ``infer`` with
the bundled MIL head writes the answer into ``<stem>.slide.json`` and attention into the
``.result.npz``; ``similar`` reads the stored embeddings; ``evaluate`` scores the slide
labels of a cohort; ``bench similar`` prints its figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.cli.main import main
from inference.models.demo.mil_data import MilSlide, make_mil_slide
from inference.results.exports import read_result_extras, read_result_npz

torch.set_num_threads(1)

#: Seeds no training or held-out MIL slide uses.
WITH_TUMOUR = MilSlide(3072, 2304, seed=3901, mpp=1.0, tumour_scale=1.0)
WITHOUT = MilSlide(3072, 2304, seed=3902, mpp=1.0, tumour_scale=0.0)


@pytest.fixture(scope="module")
def slides(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("mil-cli")
    return make_mil_slide(folder, WITH_TUMOUR), make_mil_slide(folder, WITHOUT)


@pytest.fixture(scope="module")
def results(slides: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mil-out")
    args = ["infer", *map(str, slides), "--model", "demo-tumour-mil", "--out", str(out)]
    assert main([*args, "--device", "cpu", "--no-cache", "-q"]) == 0
    return out


def test_infer_with_a_mil_head_writes_answer_and_attention(
    slides: tuple[Path, Path], results: Path
) -> None:
    tumour, clean = slides
    for slide, label in ((tumour, "tumour"), (clean, "no tumour")):
        stem = slide.stem
        report = json.loads((results / f"{stem}.slide.json").read_text())
        assert report["slide_label"] == label
        assert set(report["slide_probabilities"]) == {"no tumour", "tumour"}
        assert report["slide_probabilities"][label] > 0.5
        assert report["aggregation"]["type"] == "abmil"
        assert report["aggregation"]["name"] == "demo-tumour-mil"
        assert report["slidelens_slide_report"] == 1  # the general report's keys stay
        run = json.loads((results / f"{stem}.run.json").read_text())
        assert run["slide_level"]["slide_label"] == label
        assert run["model"]["name"] == "demo-tumour-classifier"  # the feature extractor
        assert run["parameters"]["embeddings"].startswith("penultimate:")
        path = results / f"{stem}.result.npz"
        extras = read_result_extras(path)
        assert list(extras["map_names"]) == ["attention"]
        assert float(np.nansum(extras["attention"])) == pytest.approx(1.0, abs=1e-4)
        result = read_result_npz(path)
        assert result.embeddings is not None and result.embeddings.width == 128
        assert np.isfinite(extras["attention"][0]).sum() == len(result.embeddings)


def test_similar_prints_the_places_most_like_a_patch(
    slides: tuple[Path, Path], results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tumour = slides[0]
    report = json.loads((results / f"{tumour.stem}.slide.json").read_text())
    x, y = report["largest_region"]["tumour"]["l0_point"]
    capsys.readouterr()
    args = ["similar", str(tumour), "--results", str(results), "--at", f"{x},{y}"]
    assert main([*args, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    places = doc["places"]
    assert [p["rank"] for p in places] == list(range(1, 11))
    assert doc["query"]["patch"] not in [p["patch"] for p in places]
    sims = [p["similarity"] for p in places]
    assert sims == sorted(sims, reverse=True)
    assert main([*args, "--top", "3"]) == 0
    text = capsys.readouterr().out
    assert "the 3 places most like the patch" in text and "similarity" in text
    # outside the tissue: no patch with an embedding there
    assert main(["similar", str(tumour), "--results", str(results), "--at", "1,1"]) == 2
    assert "no patch with an embedding" in capsys.readouterr().err


def test_similar_needs_embeddings_and_a_result(
    slides: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tumour = slides[0]
    out = tmp_path / "plain"
    plain = ["infer", str(tumour), "--model", "demo-tumour-classifier", "--out", str(out)]
    assert main([*plain, "--device", "cpu", "--no-cache", "-q"]) == 0
    capsys.readouterr()
    assert main(["similar", str(tumour), "--results", str(out), "--at", "1500,1100"]) == 2
    assert "no patch embeddings" in capsys.readouterr().err
    assert main(["similar", str(tumour), "--results", str(tmp_path), "--at", "1,1"]) == 1


def test_evaluate_scores_slide_labels_in_the_cohort(
    slides: tuple[Path, Path], results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["evaluate", *map(str, slides), "--results", str(results), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    cohort = doc["cohort"]
    assert cohort["slide_label_slides"] == 2
    assert cohort["slide_label_accuracy"] == 1.0
    assert cohort["slide_label_auc"] == 1.0
    assert cohort["slide_label_positive_class"] == "tumour"
    rows = {row["slide"]: row for row in cohort["slide_labels"]}
    assert rows[slides[1].name]["truth_slide_label"] == "no tumour"
    assert main(["evaluate", *map(str, slides), "--results", str(results)]) == 0
    assert "slide labels: 2 slides, AUC 1.000" in capsys.readouterr().out


def test_bench_similar_prints_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["bench", "similar", "--patches", "5000", "--width", "16", "--queries", "3"]
    assert main([*args, "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["patches"] == 5000 and figures["width"] == 16
    for key in ("index_build_ms", "search_median_ms", "search_max_ms", "full_sort_median_ms"):
        assert figures[key] >= 0

"""Where save dialogs open and the names they suggest: the slide's folder, else where the
user saved last; names that say the slide and the model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from viewer.save_locations import SaveFolders, model_names, name_part, output_name


def test_names_say_the_slide_and_the_model() -> None:
    slide = Path("/data/case 7/CMU-1 small.svs")
    assert output_name(slide, "demo-tumour-classifier", "metrics", suffix=".csv") == (
        "CMU-1-small.demo-tumour-classifier.metrics.csv"
    )
    assert output_name(slide, "", "annotations", suffix=".geojson") == (
        "CMU-1-small.annotations.geojson"
    )
    assert output_name(None, "m", suffix=".png") == "slidelens.m.png"
    assert name_part("a/b\\c: d") == "a-b-c-d"


def test_model_names_come_from_provenances() -> None:
    provenances = [
        {"model": "demo"},
        {"model": {"name": "unet", "sha256": "x"}},  # an explanation's record
        {"model": "demo"},
        {"source": "truth.png"},
    ]
    assert model_names(provenances) == ["demo", "unet"]


def test_dialogs_open_beside_the_slide_then_where_the_user_saved(tmp_path: Path) -> None:
    slides = tmp_path / "slides"
    slides.mkdir()
    one, two = slides / "one.svs", slides / "two.svs"
    folders = SaveFolders()
    assert folders.start(one) == slides
    elsewhere = tmp_path / "results"
    elsewhere.mkdir()
    folders.remember(one, elsewhere / "one.metrics.csv")
    assert folders.start(one) == elsewhere  # this slide: where its files went
    assert folders.start(two) == slides  # another slide: beside it
    assert folders.suggest(two, "x.csv") == slides / "x.csv"
    assert folders.start(None) == elsewhere


def test_a_read_only_slide_folder_sends_files_where_the_user_saved_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    folders = SaveFolders()
    assert folders.start(archive / "case.svs") == archive
    folders.remember(None, tmp_path / "out.csv")
    # a shared archive the user cannot write into (os.access: root writes anywhere)
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != archive)
    assert folders.start(archive / "case.svs") == tmp_path

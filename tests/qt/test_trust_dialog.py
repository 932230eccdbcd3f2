"""A program model the user has not trusted asks before it runs, and the question names
the kind of program: TorchScript, or a torch.export archive (``.pt2``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from inference.models.architectures import build_architecture
from inference.models.exported import export_program, save_program
from tests.helpers.models import model_folder
from tests.inference.byo_helpers import card, write_folder
from tests.qt.qt_helpers import TIMEOUT_MS, open_slide_in
from viewer.qt.main_window import MainWindow


def _pt2_folder(folder: Path) -> Path:
    write_folder(folder, card("small_cnn"), None)
    torch.manual_seed(0)
    module = build_architecture("small_cnn", 2).eval()
    save_program(export_program(module, torch.zeros(2, 3, 64, 64)), folder / "model.pt2")
    return folder


@pytest.mark.parametrize("form", ["torchscript", "pt2"])
def test_an_untrusted_program_asks_by_its_kind_and_no_runs_nothing(
    qtbot: QtBot,
    window: MainWindow,
    synthetic_slide: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    form: str,
) -> None:
    if form == "pt2":
        folder = _pt2_folder(tmp_path / "exported")
    else:
        folder = model_folder(tmp_path / "scripted", torchscript=True)
    titles: list[str] = []

    def question(parent: object, title: str, text: str, *args: object) -> object:
        titles.append(title)
        return QMessageBox.StandardButton.No

    monkeypatch.setattr(QMessageBox, "question", question)
    open_slide_in(qtbot, window, synthetic_slide)
    job_id = window.analysis.run_model(folder, "view")
    assert job_id is not None
    qtbot.waitUntil(lambda: bool(titles), timeout=TIMEOUT_MS)
    expected = "torch.export program" if form == "pt2" else "TorchScript model"
    assert titles == [f"Trust this {expected}?"]
    assert len(window.analysis.jobs.jobs) == 1  # answering no ran nothing more

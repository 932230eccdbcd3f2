"""The models panel: bundled and user models, the selected model's card, and how to run it.

Listing reads only the cards (``config.json``), never weights, so it is instant and
never imports torch.  A broken model folder is listed with its error, not hidden.
"""

from __future__ import annotations

import html
from pathlib import Path

import qtawesome as qta
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from inference.models import ModelCard, ModelEntry, ModelError, list_models, load_card
from inference.models.backends import backend_summary
from inference.models.registry import DEFAULT_BUNDLED
from viewer.qt.messages import show_warning

_ROLE_ENTRY = Qt.ItemDataRole.UserRole + 1


def card_html(card: ModelCard) -> str:
    """The card as a short HTML page: what the model does, what it needs, how good it is."""
    e = html.escape
    rows = [
        ("Task", card.task),
        ("Classes", ", ".join(card.class_names)),
        ("Architecture", card.architecture),
        # the folder's forms and the fastest here, from file names and a small JSON only
        ("Runs on", backend_summary(card)),
        (
            "Patches",
            f"{card.patch_size_pixels} px at {card.spacing_um_px:g} µm/px "
            f"({card.patch_size_pixels * card.spacing_um_px:g} µm)",
        ),
    ]
    if card.cam_target_layer:
        rows.append(("Grad-CAM layer", card.cam_target_layer))
    if card.metrics:
        rows.append(
            ("Held-out metrics", ", ".join(f"{k} {v:.5g}" for k, v in card.metrics.items()))
        )
    if card.licence:
        rows.append(("Licence", card.licence))
    table = "".join(f"<tr><td><b>{e(k)}</b></td><td>{e(str(v))}</td></tr>" for k, v in rows)
    parts = [f"<h3>{e(card.name)}</h3>"]
    if card.description:
        parts.append(f"<p>{e(card.description)}</p>")
    parts.append(f"<table cellspacing='2'>{table}</table>")
    if card.intended_use:
        parts.append(f"<p><b>Intended use:</b> {e(card.intended_use)}</p>")
    note = card.training.get("note") if card.training else None
    if note:
        parts.append(f"<p><b>Training:</b> {e(str(note))}</p>")
    return "".join(parts)


class ModelsPanel(QWidget):
    """Pick a model and run it.  Signals: ``run_requested(folder, scope)`` with scope
    ``"view"``, ``"region"`` or ``"slide"``; ``folder_added(folder)`` after "Add model
    folder…" found a valid card there."""

    run_requested = Signal(object, str)
    folder_added = Signal(object)

    def __init__(self, extra_folders: list[str] | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self._extra = [Path(p) for p in (extra_folders or [])]
        self._entries: list[ModelEntry] = []
        self.list = QListWidget()
        self.list.setObjectName("model-list")
        self.list.currentItemChanged.connect(lambda *_: self._show_card())
        self.add_button = QPushButton(qta.icon("fa5s.folder-plus"), "Add model folder…")
        self.add_button.clicked.connect(self.choose_folder)
        self.card_view = QTextBrowser()
        self.card_view.setOpenExternalLinks(False)

        self.device_combo = QComboBox()
        self.device_combo.addItem("Automatic (GPU when available)", None)
        self.device_combo.addItem("CPU", "cpu")
        self.device_combo.addItem("GPU (CUDA)", "cuda")
        self.set_cuda_available(None)
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 1024)
        self.batch_spin.setValue(32)
        options = QFormLayout()
        options.addRow("Device", self.device_combo)
        options.addRow("Batch size", self.batch_spin)

        self.run_view = QPushButton(qta.icon("fa5s.eye"), "Run on view")
        self.run_view.setToolTip("Compute the patches visible now (Ctrl+R)")
        self.run_region = QPushButton(qta.icon("fa5s.vector-square"), "Run on region…")
        self.run_region.setToolTip("Drag a rectangle on the slide; only it is computed")
        self.run_slide = QPushButton(qta.icon("fa5s.layer-group"), "Run on whole slide")
        self.run_slide.setToolTip(
            "Compute every tissue patch, the visible ones first (Ctrl+Shift+R)"
        )
        self.run_view.clicked.connect(lambda: self._request("view"))
        self.run_region.clicked.connect(lambda: self._request("region"))
        self.run_slide.clicked.connect(lambda: self._request("slide"))
        runs = QGridLayout()
        runs.addWidget(self.run_view, 0, 0)
        runs.addWidget(self.run_region, 0, 1)
        runs.addWidget(self.run_slide, 1, 0, 1, 2)

        top = QHBoxLayout()
        top.addWidget(self.add_button)
        top.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.list, 2)
        layout.addWidget(self.card_view, 3)
        layout.addLayout(options)
        layout.addLayout(runs)
        self.slide_open = False
        self.last_error: str | None = None
        self.refresh()

    # -- listing ----------------------------------------------------------------------
    def entries(self) -> list[ModelEntry]:
        """Every listed model: bundled, the user's, and folders added here (as of the
        last :meth:`refresh`; reading cards validates them, which is not free)."""
        return list(self._entries)

    def refresh(self) -> None:
        """List bundled, user and added models again (keeps the selection by folder)."""
        selected = self.selected_folder()
        self.list.clear()
        self._entries = list_models(self._extra)
        for entry in self._entries:
            label = f"{entry.name}  [{entry.source}]"
            item = QListWidgetItem(label)
            item.setData(_ROLE_ENTRY, entry)
            if entry.ok:
                item.setIcon(qta.icon("fa5s.brain"))
                item.setToolTip(str(entry.folder))
            else:
                item.setIcon(qta.icon("fa5s.exclamation-triangle", color="#c0392b"))
                item.setToolTip(entry.error or "invalid model folder")
            self.list.addItem(item)
            if selected is not None and entry.folder == selected:
                self.list.setCurrentItem(item)
        if self.list.currentItem() is None:
            # the demo tumour classifier first (what the demo and the README show)
            default = DEFAULT_BUNDLED["classification"]
            rows = [r for r in range(self.list.count()) if self.list.item(r).data(_ROLE_ENTRY).ok]
            named = [r for r in rows if self.list.item(r).data(_ROLE_ENTRY).folder.name == default]
            if rows:
                self.list.setCurrentRow((named or rows)[0])
        self._show_card()

    def selected_entry(self) -> ModelEntry | None:
        item = self.list.currentItem()
        return item.data(_ROLE_ENTRY) if item is not None else None

    def selected_folder(self) -> Path | None:
        entry = self.selected_entry()
        return entry.folder if entry is not None else None

    def select_folder(self, folder: Path) -> bool:
        for row in range(self.list.count()):
            if self.list.item(row).data(_ROLE_ENTRY).folder == folder:
                self.list.setCurrentRow(row)
                return True
        return False

    def _show_card(self) -> None:
        entry = self.selected_entry()
        if entry is None:
            self.card_view.setHtml("<p>No models found. Use <b>Add model folder…</b>.</p>")
        elif entry.card is not None:
            self.card_view.setHtml(card_html(entry.card))
        else:
            self.card_view.setHtml(
                f"<h3>{html.escape(entry.name)}</h3><p style='color:#c0392b'>"
                f"{html.escape(entry.error or 'invalid')}</p>"
            )
        self._update_buttons()

    def set_slide_open(self, is_open: bool) -> None:
        self.slide_open = is_open
        self._update_buttons()

    def set_cuda_available(self, available: bool | None) -> None:
        """Enable the GPU choice once the worker has found out (``None``: not yet known)."""
        model = self.device_combo.model()
        item = model.item(2)  # type: ignore[attr-defined]
        item.setEnabled(bool(available))
        item.setToolTip(
            "Checking for a GPU…"
            if available is None
            else ("" if available else "No CUDA GPU is available on this machine")
        )

    def _update_buttons(self) -> None:
        entry = self.selected_entry()
        ok = self.slide_open and entry is not None and entry.ok
        for button in (self.run_view, self.run_region, self.run_slide):
            button.setEnabled(ok)

    def _request(self, scope: str) -> None:
        entry = self.selected_entry()
        if entry is not None and entry.ok:
            self.run_requested.emit(entry.folder, scope)

    @property
    def device(self) -> str | None:
        value = self.device_combo.currentData()
        return str(value) if value is not None else None

    @property
    def batch_size(self) -> int:
        return int(self.batch_spin.value())

    # -- adding -----------------------------------------------------------------------
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Add a model folder (config.json + weights)"
        )
        if folder:
            self.add_folder(Path(folder))

    def add_folder(self, folder: Path) -> bool:
        """Validate a model folder's card and list it; a bad one gets a message."""
        try:
            load_card(folder)
        except ModelError as exc:
            self.last_error = str(exc)
            show_warning(self, "Not a usable model folder", str(exc))
            return False
        folder = folder.resolve()
        if folder not in self._extra:
            self._extra.append(folder)
        self.refresh()
        self.select_folder(folder)
        self.folder_added.emit(folder)
        return True

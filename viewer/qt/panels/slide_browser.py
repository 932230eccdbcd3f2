"""The slide browser: a project's slides in a table, sortable and filterable.

One row per slide: thumbnail, name, dimensions, pixel size, scanner, status (not run,
queued, running with its share of patches, done, failed with its message as tooltip)
and the slide-level outputs of the model that ran.  Clicking a header sorts; the filter
box keeps rows whose name, scanner, status or message contain its words, and the status
box keeps one status.  Double-click or Enter opens a slide.  Below: what the run does
(slides done, patches/s, time left) and the buttons to run the model on the project,
stop it and add slides.

The table reads the :class:`~viewer.projects.model.Project` and follows its events;
thumbnails are given by the controller (read off the GUI thread).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import qtawesome as qta
from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QImage, QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from viewer.projects.model import FAILED, RUNNING, STATUSES, Project, ProjectSlide

#: Roles of the table model.
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
SLIDE_ROLE = Qt.ItemDataRole.UserRole + 2
#: Fixed columns; the slide-level outputs follow.
COLUMNS = ("", "Name", "Dimensions", "µm/px", "Scanner", "Status")
THUMB_COLUMN, NAME_COLUMN, STATUS_COLUMN = 0, 1, 5
#: Side of the thumbnails in the table, in logical pixels.
ICON_SIDE = 48
_FAILED_COLOUR = QColor("#c0392b")
_ModelIndex = QModelIndex | QPersistentModelIndex


def status_text(slide: ProjectSlide) -> str:
    """``running 45%`` while running with known patches, else the status."""
    progress = slide.progress()
    if progress is not None:
        return f"{RUNNING} {round(100 * progress)}%"
    return slide.status


def _mpp_text(slide: ProjectSlide) -> str:
    if slide.mpp:
        return f"{slide.mpp:.3f}"
    if slide.typed_mpp:
        return f"{slide.typed_mpp:.3f} (typed)"
    return "" if not slide.has_facts or slide.facts_error else "unknown"


class SlideTableModel(QAbstractTableModel):
    """The project's slides as rows (see the module docstring)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self.thumbnails: dict[str, QImage] = {}
        self._outputs: list[str] = []

    def set_project(self, project: Project | None) -> None:
        if self.project is not None:
            self.project.changed.disconnect(self.reset)
            self.project.slide_changed.disconnect(self._slide_changed)
        self.project = project
        self.thumbnails = {}
        if project is not None:
            project.changed.connect(self.reset)
            project.slide_changed.connect(self._slide_changed)
        self.reset()

    def reset(self) -> None:
        self.beginResetModel()
        self._outputs = self.project.output_names() if self.project is not None else []
        self.endResetModel()

    def set_thumbnail(self, name: str, image: QImage) -> None:
        self.thumbnails[name] = image
        if self.project is not None:
            index = self.project.index_of(name)
            if index is not None:
                cell = self.index(index, THUMB_COLUMN)
                self.dataChanged.emit(cell, cell, [Qt.ItemDataRole.DecorationRole])

    def _slide_changed(self, row: int) -> None:
        if self.project is None:
            return
        if self.project.output_names() != self._outputs:
            self.reset()  # a new output column
            return
        self.dataChanged.emit(self.index(row, 0), self.index(row, self.columnCount() - 1))

    @property
    def output_names(self) -> list[str]:
        return list(self._outputs)

    def rowCount(self, parent: _ModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() or self.project is None else len(self.project)

    def columnCount(self, parent: _ModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS) + len(self._outputs)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or role != Qt.ItemDataRole.DisplayRole:
            return None
        if section < len(COLUMNS):
            return COLUMNS[section]
        return self._outputs[section - len(COLUMNS)].replace("_", " ")

    def data(self, index: _ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or self.project is None:
            return None
        slide = self.project[index.row()]
        column = index.column()
        if role == SLIDE_ROLE:
            return index.row()
        if role == Qt.ItemDataRole.DecorationRole and column == THUMB_COLUMN:
            return self.thumbnails.get(slide.name)
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(slide, column)
        if role == SORT_ROLE:
            return self._sort_key(slide, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == STATUS_COLUMN and slide.message:
                return slide.message
            if slide.facts_error:
                return slide.facts_error
            return str(slide.path)
        if role == Qt.ItemDataRole.ForegroundRole and (
            (column == STATUS_COLUMN and slide.status == FAILED) or slide.facts_error
        ):
            return QBrush(_FAILED_COLOUR)
        return None

    def _text(self, slide: ProjectSlide, column: int) -> str:
        if column == NAME_COLUMN:
            return slide.name
        if column == 2:
            if slide.width is None or slide.height is None:
                return "unreadable" if slide.facts_error else ""
            return f"{slide.width:,} x {slide.height:,}"
        if column == 3:
            return _mpp_text(slide)
        if column == 4:
            return slide.scanner
        if column == STATUS_COLUMN:
            return status_text(slide)
        if column >= len(COLUMNS):
            value = slide.outputs.get(self._outputs[column - len(COLUMNS)])
            return "" if value is None else f"{value:.3f}"
        return ""

    def _sort_key(self, slide: ProjectSlide, column: int) -> Any:
        if column in (THUMB_COLUMN, NAME_COLUMN):
            return slide.name.casefold()
        if column == 2:
            return (slide.width or 0) * (slide.height or 0)
        if column == 3:
            return slide.effective_mpp or 0.0
        if column == 4:
            return slide.scanner.casefold()
        if column == STATUS_COLUMN:
            return STATUSES.index(slide.status) + (slide.progress() or 0.0)
        value = slide.outputs.get(self._outputs[column - len(COLUMNS)])
        return -1.0 if value is None else value


class SlideFilter(QSortFilterProxyModel):
    """Sorts by :data:`SORT_ROLE`; keeps rows matching every word of the filter text and
    the chosen status (``""``: any)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.words: list[str] = []
        self.status = ""

    def set_text(self, text: str) -> None:
        self._refilter(lambda: setattr(self, "words", text.casefold().split()))

    def set_status(self, status: str) -> None:
        self._refilter(lambda: setattr(self, "status", status))

    def _refilter(self, change: Callable[[], None]) -> None:
        """Apply ``change`` to the filter and refilter the rows (Qt 6.9's filter-change
        calls where present; ``invalidateFilter``, deprecated since, before)."""
        begin = getattr(self, "beginFilterChange", None)
        if begin is None:
            change()
            self.invalidateFilter()
            return
        begin()
        change()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: _ModelIndex) -> bool:
        model = self.sourceModel()
        project = getattr(model, "project", None)
        if project is None:
            return False
        slide: ProjectSlide = project[source_row]
        if self.status and slide.status != self.status:
            return False
        haystack = " ".join(
            (slide.name, slide.scanner, slide.status, slide.message, slide.facts_error)
        ).casefold()
        return all(word in haystack for word in self.words)


class _Table(QTableView):
    """Enter opens the current row (double-click too, through ``activated``)."""

    open_row = Signal(int)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentIndex().isValid():
            self.open_row.emit(self.currentIndex().row())
            return
        super().keyPressEvent(event)


class SlideBrowserPanel(QWidget):
    """The table, its filters, the run's figures and buttons (see the module docstring).

    Signals: ``open_requested(project index)``, ``run_requested()``, ``stop_requested()``,
    ``add_requested()``.
    """

    open_requested = Signal(int)
    run_requested = Signal()
    stop_requested = Signal()
    add_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = SlideTableModel(self)
        self.proxy = SlideFilter(self)
        self.proxy.setSourceModel(self.model)
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter by name, scanner, status or message")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self.proxy.set_text)
        self.status_combo = QComboBox()
        self.status_combo.addItem("All slides", "")
        for status in STATUSES:
            self.status_combo.addItem(status.capitalize(), status)
        self.status_combo.currentIndexChanged.connect(
            lambda _: self.proxy.set_status(str(self.status_combo.currentData()))
        )
        self.table = _Table()
        self.table.setObjectName("slide-table")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(NAME_COLUMN, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setIconSize(QSize(ICON_SIDE, ICON_SIDE))
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(ICON_SIDE + 6)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setColumnWidth(THUMB_COLUMN, ICON_SIDE + 8)
        self.table.setColumnWidth(NAME_COLUMN, 130)
        self.table.setColumnWidth(2, 110)
        self.table.setColumnWidth(STATUS_COLUMN, 90)
        self.model.modelReset.connect(self._fit_output_columns)
        self.table.activated.connect(lambda index: self._open(index.row()))
        self.table.open_row.connect(self._open)
        self.figures_label = QLabel("")
        self.figures_label.setObjectName("batch-figures")
        self.figures_label.setWordWrap(True)
        self.run_button = QPushButton(qta.icon("fa5s.play"), "Run on project")
        self.run_button.setToolTip(
            "Run the model selected in the Models panel on every slide of the project "
            "(in the background, slides already done are skipped)"
        )
        self.stop_button = QPushButton(qta.icon("fa5s.stop-circle"), "Stop")
        self.stop_button.setEnabled(False)
        self.add_button = QPushButton(qta.icon("fa5s.plus"), "Add slides…")
        self.run_button.clicked.connect(self.run_requested)
        self.stop_button.clicked.connect(self.stop_requested)
        self.add_button.clicked.connect(self.add_requested)

        filters = QHBoxLayout()
        filters.addWidget(self.filter_edit, 1)
        filters.addWidget(self.status_combo)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        buttons.addWidget(self.add_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(filters)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.figures_label)
        layout.addLayout(buttons)
        self.set_project(None)

    def set_project(self, project: Project | None) -> None:
        self.model.set_project(project)
        self.run_button.setEnabled(project is not None and len(project) > 0)
        self.add_button.setEnabled(project is not None)
        self.figures_label.setText("" if project is not None else "No project open")

    def set_running(self, running: bool) -> None:
        project = self.model.project
        self.run_button.setEnabled(not running and project is not None and len(project) > 0)
        self.stop_button.setEnabled(running)

    def _fit_output_columns(self) -> None:
        """Output columns as wide as their titles and values (they come and go)."""
        for column in range(len(COLUMNS), self.model.columnCount()):
            self.table.resizeColumnToContents(column)

    def _open(self, proxy_row: int) -> None:
        row = self.project_index(proxy_row)
        if row is not None:
            self.open_requested.emit(row)

    def project_index(self, proxy_row: int) -> int | None:
        """The project index of the row shown at ``proxy_row``."""
        if not 0 <= proxy_row < self.proxy.rowCount():
            return None
        return self.proxy.mapToSource(self.proxy.index(proxy_row, 0)).row()

    def shown_order(self) -> list[int]:
        """Project indices of the rows shown, top to bottom (sorted and filtered)."""
        return [
            self.proxy.mapToSource(self.proxy.index(row, 0)).row()
            for row in range(self.proxy.rowCount())
        ]

    def select(self, index: int) -> None:
        """Make the slide at project ``index`` the current row (shown when filtered out:
        the filters are cleared)."""
        source = self.model.index(index, NAME_COLUMN)
        proxy = self.proxy.mapFromSource(source)
        if not proxy.isValid():
            self.filter_edit.clear()
            self.status_combo.setCurrentIndex(0)
            proxy = self.proxy.mapFromSource(source)
        if proxy.isValid():
            self.table.setCurrentIndex(proxy)
            self.table.scrollTo(proxy)

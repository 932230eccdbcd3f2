"""The one save dialog of the viewer: it opens in the slide's folder (or where the user
saved last, see :class:`~viewer.save_locations.SaveFolders`) with a name that says the
slide and the model, and remembers where the user saved."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QWidget

from viewer.save_locations import SaveFolders

#: The folders remembered for this session, shared by every save dialog of the window.
SAVE_FOLDERS = SaveFolders()


def start_folder(slide: Path | None) -> Path:
    """The folder a file dialog about ``slide`` opens in (:meth:`SaveFolders.start`)."""
    return SAVE_FOLDERS.start(slide)


def ask_save_path(
    parent: QWidget, title: str, slide: Path | None, name: str, file_filter: str
) -> Path | None:
    """Ask where to save a file made from ``slide``, proposing ``name`` in the folder
    :meth:`SaveFolders.start` chooses; ``None`` when the user cancels."""
    start = SAVE_FOLDERS.suggest(slide, name)
    path, _ = QFileDialog.getSaveFileName(parent, title, str(start), file_filter)
    if not path:
        return None
    chosen = Path(path)
    SAVE_FOLDERS.remember(slide, chosen)
    return chosen

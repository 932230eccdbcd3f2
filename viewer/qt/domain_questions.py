"""Whether a model may run on the open slide when the slide is outside the model's
domain, or the model is not for diagnosis and its card cannot tell
(``DomainCheck.asks``): the user is asked once per slide and model, and a "run anyway"
is remembered for the session by every part of the window that runs models (a patch
model from the Models panel, a slide-level model from the Slide report)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QMainWindow

from viewer.qt import dialogs

if TYPE_CHECKING:
    from inference.slides import SlideInfo


class DomainQuestions:
    """See the module docstring; GUI thread."""

    def __init__(self, window: QMainWindow) -> None:
        self.window = window
        #: (slide source_id, model folder) pairs the user chose to run anyway.
        self._answers: set[tuple[str, str]] = set()

    def accepted(self, folder: Path, info: SlideInfo) -> bool:
        """Whether the model in ``folder`` (a patch model, or a slide-level head whose
        card states its domain) may run on the slide of ``info``; a folder whose card
        cannot be read is let through (the run reports what is wrong with it)."""
        from inference.models.card import ModelError, load_card
        from inference.models.domain import check_domain
        from inference.models.registry import is_slide_head
        from inference.slide_level.head_card import load_head_card

        try:
            card = load_head_card(folder) if is_slide_head(folder) else load_card(folder)
        except ModelError:
            return True
        check = check_domain(card.name, card.domain, info.properties)
        key = (info.source_id, str(Path(folder).resolve()))
        if not check.asks or key in self._answers:
            return True
        if not dialogs.confirm_outside_domain(self.window, check, info.path.name):
            self.window.statusBar().showMessage(
                f"{card.name} was not run on {info.path.name}", 6000
            )
            return False
        self._answers.add(key)
        return True

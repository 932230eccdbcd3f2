"""The errors of loading a model folder's weights (a card's own errors are in card.py).

Both are :class:`~inference.models.card.ModelError`: ``str(exc)`` names the file, the
cause and what to do.
"""

from __future__ import annotations

from pathlib import Path

from inference.models.card import ModelError

#: Why each kind of program needs trust, for :class:`UntrustedModelError`'s message.
PROGRAM_RISKS = {
    "torchscript": "a TorchScript model is a program that runs code when loaded",
    "pt2": (
        "a torch.export program (.pt2) can run code when loaded: torch.export.load "
        "unpickles parts of the archive and evaluates its shape expressions"
    ),
}


class ModelLoadError(ModelError):
    """A model folder's weights could not be loaded; the message names the file, the
    cause and what to do.  ``path`` is the file (or folder) concerned."""

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


class UntrustedModelError(ModelLoadError):
    """A program (TorchScript or ``torch.export``) the user has not trusted; nothing of
    it was read.

    ``sha256`` is the file's hash (what trusting it records), ``path`` the file and
    ``kind`` ``"torchscript"`` or ``"pt2"``.
    """

    def __init__(self, path: Path, sha256: str, kind: str = "torchscript") -> None:
        risk = PROGRAM_RISKS.get(kind, PROGRAM_RISKS["torchscript"])
        super().__init__(
            f"{path}: refused: {risk}, and you have not trusted this one. If you trust "
            "where it came from, load it with --trust (command line) or confirm in the "
            f"viewer; SlideLens then remembers it by its SHA-256 ({sha256[:16]}...).",
            path=path,
        )
        self.sha256 = sha256
        self.kind = kind

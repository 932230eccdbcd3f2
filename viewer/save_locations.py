"""Where a save dialog opens and what it suggests calling the file.  Qt-free.

A file saved from the viewer (a figure, metrics, annotations, a measurement table) is
read later, next to others, so its suggested name says which slide and which model it
comes from: :func:`output_name` gives ``<slide stem>.<model>.<what><suffix>``
(``case7.demo-tumour-classifier.metrics.csv``).

:class:`SaveFolders` chooses the folder a dialog opens in: the folder last saved into
for this slide; else the slide's own folder, when it can be written; else the folder
last saved into for any slide; else the home folder.  So a slide's outputs gather
beside it unless the user chose another place, and a read-only slide folder (a shared
archive) sends them where the user saved last.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

#: Characters a suggested file name keeps besides letters and digits.
_SAFE = "-_+"


def name_part(text: str) -> str:
    """``text`` as one part of a file name: letters, digits and ``-_+`` kept, runs of
    anything else one ``-``; ``""`` when nothing is left."""
    kept = "".join(c if c.isalnum() or c in _SAFE else "-" for c in text.strip())
    return "-".join(part for part in kept.split("-") if part)


def output_name(slide: Path | str | None, *parts: str, suffix: str) -> str:
    """``<slide stem>.<part>...<suffix>`` for a file made from ``slide`` (each part made
    safe by :func:`name_part`, empty ones left out; ``slidelens`` without a slide)."""
    stem = name_part(Path(slide).stem) if slide is not None else ""
    words = [w for w in (stem or "slidelens", *(name_part(p) for p in parts)) if w]
    return ".".join(words) + suffix


def model_names(provenances: Iterable[Mapping[str, object]]) -> list[str]:
    """The models named by layer provenances (``"model"``: a name, or a record with a
    ``"name"``), first seen first, each once."""
    names: list[str] = []
    for provenance in provenances:
        model = provenance.get("model")
        if isinstance(model, Mapping):
            model = model.get("name")
        if isinstance(model, str) and model and model not in names:
            names.append(model)
    return names


class SaveFolders:
    """The folder each save dialog opens in (see the module docstring); remembered for
    the session."""

    def __init__(self) -> None:
        self._last: Path | None = None
        self._per_slide: dict[Path, Path] = {}

    def start(self, slide: Path | None) -> Path:
        """The folder to open a save dialog in, for a file made from ``slide``."""
        if slide is not None:
            chosen = self._per_slide.get(slide)
            if chosen is not None and chosen.is_dir():
                return chosen
            folder = slide.parent
            if folder.is_dir() and os.access(folder, os.W_OK):
                return folder
        if self._last is not None and self._last.is_dir():
            return self._last
        return Path.home()

    def suggest(self, slide: Path | None, name: str) -> Path:
        """The path a save dialog should propose: ``name`` in :meth:`start`."""
        return self.start(slide) / name

    def remember(self, slide: Path | None, saved: Path) -> None:
        """The user saved ``saved`` (made from ``slide``): its folder is used next time."""
        folder = saved.parent
        self._last = folder
        if slide is not None:
            self._per_slide[slide] = folder

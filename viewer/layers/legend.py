"""What a layer's colours mean, independent of how it is drawn (canvas or exported figure)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ColourBarLegend:
    """A continuous colour bar: ``colormap`` from ``vmin`` to ``vmax``; values below
    ``threshold`` (when set) are hidden.  ``warning``: lines shown under the title in
    warning colours ("" for none; see ``Layer.warning``)."""

    title: str
    label: str
    colormap: str
    vmin: float
    vmax: float
    threshold: float | None = None
    warning: str = ""


@dataclass(frozen=True)
class ClassLegend:
    """Discrete classes and their colours (``warning`` as for :class:`ColourBarLegend`)."""

    title: str
    entries: tuple[tuple[str, tuple[int, int, int]], ...]
    warning: str = ""


Legend = ColourBarLegend | ClassLegend

"""The viewport model: which part of the slide is on screen, at what zoom.  Qt-free."""

from __future__ import annotations

from psygnal import Signal

from inference.core.geometry import Rect, ViewTransform

#: The most a user can zoom in: screen pixels per level-0 pixel.
MAX_SCALE = 16.0
#: How far out beyond "fit" a user can zoom (a fraction of the fit scale).
MIN_FIT_FRACTION = 0.25


class ViewportModel:
    """Centre point (level-0 px) and zoom (screen px per level-0 px) of a view of a slide.

    ``changed`` fires after every change.  The centre is kept inside the slide so the
    slide can never be lost off screen; the zoom stays between a quarter of "fit" and
    :data:`MAX_SCALE`.
    """

    changed = Signal()

    def __init__(self, l0_width: int = 1, l0_height: int = 1) -> None:
        self._l0_w = max(1, l0_width)
        self._l0_h = max(1, l0_height)
        self._scr_w = 1
        self._scr_h = 1
        self._l0_cx = self._l0_w / 2
        self._l0_cy = self._l0_h / 2
        self._scale = 1.0

    # -- state ------------------------------------------------------------------------
    @property
    def scale(self) -> float:
        return self._scale

    @property
    def l0_center(self) -> tuple[float, float]:
        return self._l0_cx, self._l0_cy

    @property
    def scr_size(self) -> tuple[int, int]:
        return self._scr_w, self._scr_h

    @property
    def l0_size(self) -> tuple[int, int]:
        return self._l0_w, self._l0_h

    def transform(self) -> ViewTransform:
        """Level-0 to screen mapping for the current state."""
        return ViewTransform(
            self._l0_cx - self._scr_w / 2 / self._scale,
            self._l0_cy - self._scr_h / 2 / self._scale,
            self._scale,
        )

    def visible_l0_rect(self) -> Rect:
        """The level-0 rectangle the screen shows (may extend past the slide)."""
        return self.transform().scr_rect_to_l0(Rect(0, 0, self._scr_w, self._scr_h))

    def fit_scale(self) -> float:
        """The zoom at which the whole slide fits the screen."""
        return min(self._scr_w / self._l0_w, self._scr_h / self._l0_h)

    def min_scale(self) -> float:
        return min(self.fit_scale() * MIN_FIT_FRACTION, MAX_SCALE)

    # -- changes ----------------------------------------------------------------------
    def set_slide_size(self, l0_width: int, l0_height: int) -> None:
        """A new slide: remember its size and fit it."""
        self._l0_w, self._l0_h = max(1, l0_width), max(1, l0_height)
        self.fit()

    def resize(self, scr_width: int, scr_height: int) -> None:
        """The widget changed size; the centre and zoom stay."""
        self._scr_w, self._scr_h = max(1, scr_width), max(1, scr_height)
        self._scale = max(self._scale, self.min_scale())
        self.changed.emit()

    def fit(self) -> None:
        self._l0_cx, self._l0_cy = self._l0_w / 2, self._l0_h / 2
        self._scale = self.fit_scale()
        self.changed.emit()

    def set_scale(self, scale: float, scr_anchor: tuple[float, float] | None = None) -> None:
        """Zoom to ``scale``, keeping the slide point under ``scr_anchor`` fixed on screen."""
        scale = min(MAX_SCALE, max(self.min_scale(), scale))
        if scale == self._scale:
            return
        if scr_anchor is None:
            scr_anchor = (self._scr_w / 2, self._scr_h / 2)
        l0_ax, l0_ay = self.transform().scr_to_l0(*scr_anchor)
        self._scale = scale
        self._l0_cx = l0_ax - (scr_anchor[0] - self._scr_w / 2) / scale
        self._l0_cy = l0_ay - (scr_anchor[1] - self._scr_h / 2) / scale
        self._clamp_center()
        self.changed.emit()

    def zoom_by(self, factor: float, scr_anchor: tuple[float, float] | None = None) -> None:
        self.set_scale(self._scale * factor, scr_anchor)

    def pan_by_scr(self, scr_dx: float, scr_dy: float) -> None:
        """Move the slide by a screen distance (drag right: content moves right)."""
        self.center_on(self._l0_cx - scr_dx / self._scale, self._l0_cy - scr_dy / self._scale)

    def center_on(self, l0_x: float, l0_y: float) -> None:
        old = (self._l0_cx, self._l0_cy)
        self._l0_cx, self._l0_cy = l0_x, l0_y
        self._clamp_center()
        if (self._l0_cx, self._l0_cy) != old:
            self.changed.emit()

    def _clamp_center(self) -> None:
        self._l0_cx = min(max(self._l0_cx, 0.0), float(self._l0_w))
        self._l0_cy = min(max(self._l0_cy, 0.0), float(self._l0_h))

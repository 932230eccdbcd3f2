"""The viewport model: which part of the slide is on screen, at what zoom.  Qt-free."""

from __future__ import annotations

import math

from psygnal import Signal

from inference.core.geometry import Rect, ViewTransform, dev_to_scr, scr_to_dev

#: The most a user can zoom in: device pixels per level-0 pixel.
MAX_SCALE = 16.0
#: How far out beyond "fit" a user can zoom (a fraction of the fit scale).
MIN_FIT_FRACTION = 0.25


class ViewportModel:
    """Centre point (level-0 px) and zoom of a view of a slide.

    Positions and sizes on screen are ``scr_`` px, the widget's logical pixels (what
    input events and painters use); ``scale`` is screen px per level-0 px.  The screen
    has ``device_pixel_ratio`` device pixels per screen pixel (2 on a typical HiDPI
    screen), and ``dev_scale`` (device px per level-0 px) is the zoom the user sees:
    ``1`` is one slide pixel per device pixel ("1:1"), the zoom in the status bar, and
    what the pyramid level and the magnification are chosen by.

    ``l0_bounds`` is the part of the slide that holds the scan (the whole slide unless
    the slide states bounds, see ``SlideInfo.l0_bounds``): fitting frames it, and the
    centre is kept inside it, so the slide can never be lost off screen.  ``changed``
    fires after every change.  The zoom stays between a quarter of "fit" and
    :data:`MAX_SCALE` device px per level-0 px.
    """

    changed = Signal()

    def __init__(self, l0_width: int = 1, l0_height: int = 1) -> None:
        self._l0_w = max(1, l0_width)
        self._l0_h = max(1, l0_height)
        self._l0_bounds = Rect(0, 0, self._l0_w, self._l0_h)
        self._scr_w = 1
        self._scr_h = 1
        self._dev_per_scr = 1.0
        self._l0_cx = self._l0_w / 2
        self._l0_cy = self._l0_h / 2
        self._scale = 1.0

    # -- state ------------------------------------------------------------------------
    @property
    def scale(self) -> float:
        """Screen (logical) px per level-0 px."""
        return self._scale

    @property
    def dev_scale(self) -> float:
        """Device px per level-0 px: the zoom as the user sees it (1 is "1:1")."""
        return scr_to_dev(self._scale, self._dev_per_scr)

    @property
    def device_pixel_ratio(self) -> float:
        """Device pixels per screen pixel of the screen that shows the view."""
        return self._dev_per_scr

    @property
    def l0_center(self) -> tuple[float, float]:
        return self._l0_cx, self._l0_cy

    @property
    def scr_size(self) -> tuple[int, int]:
        return self._scr_w, self._scr_h

    @property
    def l0_size(self) -> tuple[int, int]:
        """Level-0 ``(width, height)`` of the whole slide."""
        return self._l0_w, self._l0_h

    @property
    def l0_bounds(self) -> Rect:
        """The level-0 rectangle that holds the scan (the whole slide unless stated)."""
        return self._l0_bounds

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
        """The zoom (screen px per level-0 px) at which the bounds fit the screen."""
        return min(self._scr_w / self._l0_bounds.w, self._scr_h / self._l0_bounds.h)

    def max_scale(self) -> float:
        """The largest ``scale``: :data:`MAX_SCALE` device px per level-0 px."""
        return dev_to_scr(MAX_SCALE, self._dev_per_scr)

    def min_scale(self) -> float:
        return min(self.fit_scale() * MIN_FIT_FRACTION, self.max_scale())

    # -- changes ----------------------------------------------------------------------
    def set_slide_size(self, l0_width: int, l0_height: int, l0_bounds: Rect | None = None) -> None:
        """A new slide: remember its size and the bounds of its scan, and fit them.

        ``l0_bounds`` (default: the whole slide) is clipped to the slide; an empty
        rectangle means the whole slide.
        """
        self._l0_w, self._l0_h = max(1, l0_width), max(1, l0_height)
        whole = Rect(0, 0, self._l0_w, self._l0_h)
        bounds = whole if l0_bounds is None else l0_bounds.intersect(whole)
        self._l0_bounds = whole if bounds.w < 1 or bounds.h < 1 else bounds
        self.fit()

    def resize(self, scr_width: int, scr_height: int) -> None:
        """The widget changed size; the centre and zoom stay."""
        self._scr_w, self._scr_h = max(1, scr_width), max(1, scr_height)
        self._scale = max(self._scale, self.min_scale())
        self.changed.emit()

    def set_device_pixel_ratio(self, dev_per_scr: float) -> None:
        """The view moved to a screen with another device pixel ratio.

        The widget keeps its logical size, so the centre and ``scale`` stay (the same
        part of the slide stays on screen) and ``dev_scale`` follows the ratio;
        ``changed`` fires (the level to read changes).  Ratios that are not positive
        and finite are ignored.
        """
        if not (math.isfinite(dev_per_scr) and dev_per_scr > 0):
            return
        if dev_per_scr == self._dev_per_scr:
            return
        self._dev_per_scr = dev_per_scr
        self._scale = min(self.max_scale(), max(self.min_scale(), self._scale))
        self.changed.emit()

    def fit(self) -> None:
        """Centre the bounds and zoom so they fill the screen."""
        self._l0_cx, self._l0_cy = self._l0_bounds.center
        self._scale = self.fit_scale()
        self.changed.emit()

    def set_scale(self, scale: float, scr_anchor: tuple[float, float] | None = None) -> None:
        """Zoom to ``scale``, keeping the slide point under ``scr_anchor`` fixed on screen."""
        scale = min(self.max_scale(), max(self.min_scale(), scale))
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

    def set_dev_scale(
        self, dev_scale: float, scr_anchor: tuple[float, float] | None = None
    ) -> None:
        """Zoom to ``dev_scale`` device px per level-0 px (1: one slide pixel per device
        pixel), keeping the point under ``scr_anchor`` fixed (see :meth:`set_scale`)."""
        self.set_scale(dev_to_scr(dev_scale, self._dev_per_scr), scr_anchor)

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
        bounds = self._l0_bounds
        self._l0_cx = min(max(self._l0_cx, bounds.x), bounds.right)
        self._l0_cy = min(max(self._l0_cy, bounds.y), bounds.bottom)

"""The permanent labels of the main window's status bar: where the cursor is on the
slide, the magnification and the zoom."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QStatusBar

from inference.core.geometry import is_upsampled
from inference.slides import SlideInfo
from viewer.qt.canvas.slide_canvas import SlideCanvas

WELCOME = "Open a slide: File > Open, drag a file here, or `slidelens SLIDE`"


class StatusLabels:
    """Cursor position, magnification and zoom, at the right of the status bar."""

    def __init__(self, status: QStatusBar) -> None:
        self.cursor_label = QLabel()
        self.magnification_label = QLabel()
        self.zoom_label = QLabel()
        for label in (self.cursor_label, self.magnification_label, self.zoom_label):
            label.setMinimumWidth(90)
            status.addPermanentWidget(label)
        self.cursor_label.setMinimumWidth(330)
        status.showMessage(WELCOME)

    def show_view(self, canvas: SlideCanvas, slide_open: bool) -> None:
        """The canvas's magnification and zoom (blank without a slide), both per device
        pixel: "zoom 100%" is one slide pixel per device pixel, on a HiDPI screen too."""
        if not slide_open:
            self.magnification_label.setText("")
            self.zoom_label.setText("")
            return
        self.zoom_label.setText(f"zoom {canvas.viewport.dev_scale * 100:.3g}%")
        mag = canvas.magnification()
        info = canvas.source.info if canvas.source is not None else None
        upsampled = (
            mag is not None
            and info is not None
            and is_upsampled(mag, canvas.mpp, info.objective_power)
        )
        shown = "mag: n/a" if mag is None else f"{mag:.1f}x"
        self.magnification_label.setText(shown + (" (upsampled)" if upsampled else ""))
        self.magnification_label.setToolTip(
            "Above the magnification the slide was scanned at: its pixels are enlarged"
            if upsampled
            else "Apparent magnification (per device pixel)"
        )

    def show_cursor(
        self, info: SlideInfo, l0_x: float, l0_y: float, mpp: float | None = None
    ) -> bool:
        """Where the cursor is, in px (and µm when the slide has a pixel size: ``mpp``,
        the effective one, else the slide's own).  Returns whether it is over the slide
        (the label is blank when not)."""
        l0_w, l0_h = info.dimensions
        if not (0 <= l0_x < l0_w and 0 <= l0_y < l0_h):
            self.cursor_label.setText("")
            return False
        text = f"x {l0_x:,.0f}  y {l0_y:,.0f} px"
        mpp = mpp or info.mpp
        if mpp:
            text += f"  ({l0_x * mpp:,.1f}, {l0_y * mpp:,.1f} µm)"
        self.cursor_label.setText(text)
        return True

    def clear_cursor(self) -> None:
        self.cursor_label.setText("")

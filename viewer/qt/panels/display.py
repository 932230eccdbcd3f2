"""The Display panel: brightness, contrast and gamma of the slide's pixels, and a reset.

Sliders move in whole steps: brightness in per cent of the full range, contrast and
gamma on a logarithmic scale (so 0.5 and 2 are equally far from 1).  The panel only
shows and asks; the adjustment itself lives in a
:class:`~viewer.tiles.adjustment.DisplayAdjustmentModel` (see the display controller).
"""

from __future__ import annotations

import math

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from viewer.tiles.adjustment import (
    BRIGHTNESS_RANGE,
    CONTRAST_RANGE,
    GAMMA_RANGE,
    NEUTRAL,
    DisplayAdjustment,
)

#: Slider steps per unit of log2 (contrast, gamma) or per whole range (brightness: %).
_LOG_STEPS = 100


def _log_slider(low: float, high: float) -> QSlider:
    slider = QSlider(Qt.Orientation.Horizontal)
    slider.setRange(
        math.ceil(math.log2(low) * _LOG_STEPS), math.floor(math.log2(high) * _LOG_STEPS)
    )
    return slider


class DisplayPanel(QWidget):
    """Three sliders and a reset; ``adjustment_changed(DisplayAdjustment)`` when the user
    moves one, ``reset_requested()`` for the button.  :meth:`show_adjustment` sets the
    controls without emitting."""

    adjustment_changed = Signal(object)
    reset_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.brightness = QSlider(Qt.Orientation.Horizontal)
        low, high = BRIGHTNESS_RANGE
        self.brightness.setRange(round(low * 100), round(high * 100))
        self.brightness.setToolTip("Adds to every value (per cent of the full range)")
        self.contrast = _log_slider(*CONTRAST_RANGE)
        self.contrast.setToolTip("Stretches the values about mid grey (1: unchanged)")
        self.gamma = _log_slider(*GAMMA_RANGE)
        self.gamma.setToolTip("Below 1 lightens the mid-tones, above 1 darkens them")
        self.values = {name: QLabel() for name in ("brightness", "contrast", "gamma")}
        form = QFormLayout()
        for label, slider, name in (
            ("Brightness", self.brightness, "brightness"),
            ("Contrast", self.contrast, "contrast"),
            ("Gamma", self.gamma, "gamma"),
        ):
            row = QHBoxLayout()
            row.addWidget(slider, 1)
            value = self.values[name]
            value.setMinimumWidth(44)
            value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            row.addWidget(value)
            form.addRow(label, row)
            slider.valueChanged.connect(self._on_slider)
        self.reset_button = QPushButton("Reset")
        self.reset_button.setToolTip("Show the slide as scanned (Ctrl+Shift+0)")
        self.reset_button.clicked.connect(self.reset_requested)
        note = QLabel(
            "For the slide's pixels on screen and in exported figures (recorded in their "
            "provenance); heatmaps and annotations keep their colours."
        )
        note.setWordWrap(True)
        note.setStyleSheet("color: palette(mid);")
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.reset_button)
        layout.addLayout(buttons)
        layout.addWidget(note)
        layout.addStretch(1)
        self.show_adjustment(NEUTRAL)

    def adjustment(self) -> DisplayAdjustment:
        """What the controls show."""
        return DisplayAdjustment(
            self.brightness.value() / 100,
            2 ** (self.contrast.value() / _LOG_STEPS),
            2 ** (self.gamma.value() / _LOG_STEPS),
        )

    def show_adjustment(self, adjustment: DisplayAdjustment) -> None:
        """Set the controls to ``adjustment`` (no signal)."""
        for slider, value in (
            (self.brightness, round(adjustment.brightness * 100)),
            (self.contrast, round(math.log2(adjustment.contrast) * _LOG_STEPS)),
            (self.gamma, round(math.log2(adjustment.gamma) * _LOG_STEPS)),
        ):
            slider.blockSignals(True)
            slider.setValue(value)
            slider.blockSignals(False)
        self._show_values(adjustment)
        self.reset_button.setEnabled(not adjustment.is_identity)

    def _show_values(self, adjustment: DisplayAdjustment) -> None:
        self.values["brightness"].setText(f"{100 * adjustment.brightness:+.0f} %")
        self.values["contrast"].setText(f"{adjustment.contrast:.2f}")
        self.values["gamma"].setText(f"{adjustment.gamma:.2f}")

    def _on_slider(self, _value: int) -> None:
        adjustment = self.adjustment()
        self._show_values(adjustment)
        self.reset_button.setEnabled(not adjustment.is_identity)
        self.adjustment_changed.emit(adjustment)

"""Explanation progress names what it counts: passes of the model over how many
patches, the same in ``slidelens explain`` and in the viewer's Explain panel."""

from __future__ import annotations

import io

from inference.cli.explain import _Bar
from inference.explain.progress import PlanListener, ProgressTracker, patch_count


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Listener:
    def __init__(self) -> None:
        self.planned_with: list[int] = []
        self.reports: list[tuple[int, int]] = []

    def planned(self, patches: int) -> None:
        self.planned_with.append(patches)

    def __call__(self, done: int, total: int) -> None:
        self.reports.append((done, total))


def test_the_tracker_tells_a_listener_the_patches_before_the_first_report() -> None:
    listener = _Listener()
    assert isinstance(listener, PlanListener)
    tracker = ProgressTracker(listener)
    tracker.start(24, patches=12)
    tracker.advance(5)
    assert listener.planned_with == [12] and listener.reports == [(0, 24), (5, 24)]
    # a plain callback still works, and is told nothing else
    seen: list[tuple[int, int]] = []
    ProgressTracker(lambda d, t: seen.append((d, t))).start(4, patches=2)
    assert seen == [(0, 4)]


def test_the_command_line_bar_says_patches_and_passes() -> None:
    stream = _Terminal()
    bar = _Bar("slide.svs gradcam", stream, enabled=True)
    tracker = ProgressTracker(bar)
    tracker.start(140, patches=70)
    tracker.finish()
    assert stream.getvalue().endswith(
        "slide.svs gradcam: 70 patches [" + "#" * 28 + "] 140/140 passes"
    )
    assert patch_count(1) == "1 patch" and patch_count(2048) == "2,048 patches"

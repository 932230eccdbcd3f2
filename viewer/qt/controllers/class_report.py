"""The grade and class areas of whole-slide results: in the Slide report panel, and in the
provenance every figure copies.

:class:`ClassReportController` listens to ``InferenceJobs.result_ready``.  For a
whole-slide result (``provenance["scope"] == "slide"``) of a classification or
segmentation model with at least two classes, it makes the slide report exactly as
``slidelens infer`` does for ``<stem>.slide.json``
(:func:`~inference.results.slide_report.slide_report`, :func:`make_class_report`), off
the GUI thread (:class:`~viewer.qt.background.BackgroundCalls`): the grading rule is the
model card's (:meth:`~inference.results.grading.GradingSpec.from_card`), the pixel size
the open slide's (:class:`~viewer.pixel_size.SlidePixelSize`).  A card that is gone or
unreadable, or a rule that cannot be used, gives a report without a grade that says why
(and ``message``), never a failure.  The report then

* becomes one section of the panel per model
  (:class:`~viewer.qt.panels.grade_section.GradeSection`; a newer result of the same
  model replaces it), whose "Go to" buttons call the ``go_to`` callable given;
* is stored, in short (:func:`~viewer.grade_provenance.grade_summary`), in the
  provenance of every layer of the result under ``"slide_report"``, so figures carry it.

A result of the current view or a drawn region is not graded: when its model declares a
grading rule, ``message`` says that grading needs a whole-slide run.  Every answer is
tagged with the slide and the request it was made for; one for another slide, or for a
model's older result, is dropped.  Nothing is modal.  :meth:`set_slide` removes every
section; a change of the pixel size remakes the shown reports (their areas).

Signals: ``shown(ClassReportOutcome)`` once a section is in the panel,
``message(str)`` for the status bar.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from PySide6.QtCore import QObject, Signal

from inference.models.domain import warning_of
from viewer.grade_provenance import PROVENANCE_KEY, grade_summary
from viewer.pixel_size import SlidePixelSize
from viewer.qt.background import BackgroundCalls
from viewer.qt.controllers.inference_jobs import InferenceJobs, ReadyResult
from viewer.qt.inference_worker import SlideTag
from viewer.qt.panels.grade_section import GradeSection
from viewer.qt.panels.slide_report import SlideReportPanel
from viewer.result_layers import result_model_card

if TYPE_CHECKING:
    from inference.results.store import InferenceResult
    from viewer.qt.controllers.slide_opener import OpenedSlide

#: Tasks whose results have classes to report.
REPORTED_TASKS = ("classification", "segmentation")
#: The panel's sections of this controller are keyed ``class-report:<model>``.
SECTION_PREFIX = "class-report:"


@dataclass(frozen=True)
class ClassReportOutcome:
    """One report made for ``slide`` by request ``request_id``: ``model`` (its name, the
    section's key), the ``report`` dict and ``problem``: why it has no grade although
    the model may grade ("" when there is nothing to say)."""

    slide: SlideTag
    request_id: int
    model: str
    report: dict[str, Any]
    problem: str = ""


def model_name(provenance: Mapping[str, Any]) -> str:
    """The model a result's provenance names (its folder's name)."""
    name = provenance.get("model")
    if name:
        return str(name)
    folder = provenance.get("model_folder")
    return Path(str(folder)).name if folder else "model"


def is_reported(result: object) -> bool:
    """Whether a result has classes to report: two or more, of a classifier or a
    segmentation model."""
    names = getattr(result, "class_names", ())
    return getattr(result, "task", None) in REPORTED_TASKS and len(names) >= 2


def make_class_report(
    result: InferenceResult,
    provenance: Mapping[str, Any],
    mpp: float | None,
    slide_name: str | None,
) -> tuple[dict[str, Any], str]:
    """The slide report of ``result`` as ``slidelens infer`` writes it, and why it has no
    grade when its model's card could not give one ("" otherwise).  Runs off the GUI
    thread; reads the card."""
    from inference.models.card import ModelError
    from inference.results.grading import GradingError, GradingSpec
    from inference.results.slide_report import slide_report

    grading: GradingSpec | None = None
    threshold = 0.5
    problem = ""
    try:
        card = result_model_card(provenance)
    except ModelError as exc:
        problem = f"No grade: the model's card could not be read ({exc})."
    else:
        threshold = card.threshold
        try:
            grading = GradingSpec.from_card(card)
        except GradingError as exc:
            problem = f"No grade: {card.config_path}: grading: {exc}."
    if grading is not None:
        missing = sorted(set(grading.patterns) - set(result.class_names))
        if missing:  # the card changed since the result was made
            problem = (
                f"No grade: the card grades {', '.join(missing)}, which this result "
                f"({', '.join(result.class_names)}) does not have; run the model again."
            )
            grading = None
    report = slide_report(
        result,
        mpp=mpp,
        grading=grading,
        threshold=threshold,
        slide=slide_name,
        model={"name": model_name(provenance), "sha256": provenance.get("model_sha256")},
    )
    return report, problem


class ClassReportController(QObject):
    """See the module docstring.  ``go_to`` moves the canvas to a level-0
    ``(x, y, w, h)`` (the slide-level controller's)."""

    shown = Signal(object)  # ClassReportOutcome
    message = Signal(str)

    def __init__(
        self,
        jobs: InferenceJobs,
        panel: SlideReportPanel,
        pixel_size: SlidePixelSize,
        go_to: Callable[[tuple[float, ...]], None],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.panel = panel
        self.pixel_size = pixel_size
        self.go_to = go_to
        self.slide: SlideTag | None = None
        self.slide_name: str | None = None
        self.calls = BackgroundCalls(self)
        self._requests = itertools.count(1)
        #: model -> its newest request (older answers are dropped).
        self._latest: dict[str, int] = {}
        #: model -> its newest whole-slide result (made again when the pixel size changes).
        self._results: dict[str, ReadyResult] = {}
        #: model -> the outcome its section shows.
        self.outcomes: dict[str, ClassReportOutcome] = {}
        self.sections: dict[str, GradeSection] = {}
        jobs.result_ready.connect(self._on_ready)
        pixel_size.changed.connect(self._on_pixel_size_changed)

    def set_slide(self, opened: OpenedSlide | None) -> None:
        """Another slide (or none): what was asked for the old one is dropped, its
        sections removed."""
        self.calls.forget_pending()
        self.slide = opened.tag if opened is not None else None
        self.slide_name = opened.path.name if opened is not None else None
        self._latest.clear()
        self._results.clear()
        self.outcomes.clear()
        for model in list(self.sections):
            self.panel.remove_section(SECTION_PREFIX + model)
        self.sections.clear()

    # -- results -------------------------------------------------------------------------
    def _on_ready(self, ready: object) -> None:
        if not isinstance(ready, ReadyResult) or ready.slide != self.slide:
            return
        if not is_reported(ready.result):
            return
        model = model_name(ready.provenance)
        if ready.provenance.get("scope") != "slide":
            if not ready.restored:  # asked for just now, not brought back on opening
                self._hint_whole_slide(ready, model)
            return
        self._results[model] = ready
        self.request(model)

    def request(self, model: str) -> int:
        """Make ``model``'s report again from its newest whole-slide result, off the GUI
        thread; returns the request number (-1 when there is no such result)."""
        ready = self._results.get(model)
        slide = self.slide
        if ready is None or slide is None or ready.slide != slide:
            return -1
        request = next(self._requests)
        self._latest[model] = request
        provenance = dict(ready.provenance)  # the layers' own dict changes on this thread
        mpp = self._mpp(provenance)
        name, result = self.slide_name, ready.result

        def done(answer: object) -> None:
            report, problem = cast("tuple[dict[str, Any], str]", answer)
            if self._current(slide, model, request):
                self._show(ClassReportOutcome(slide, request, model, report, problem), ready)

        def failed(error: str) -> None:
            if self._current(slide, model, request):
                self.message.emit(f"No slide report for {model}: {error}")

        self.calls.call(
            lambda: make_class_report(result, provenance, mpp, name),
            done,
            failed,
            "slidelens-class-report",
        )
        return request

    def _current(self, slide: SlideTag, model: str, request: int) -> bool:
        return slide == self.slide and self._latest.get(model) == request

    def _mpp(self, provenance: Mapping[str, Any]) -> float | None:
        mpp = self.pixel_size.mpp
        if mpp is None:  # the size the job was run at, when the user typed one then
            typed = provenance.get("typed_mpp")
            mpp = float(typed) if isinstance(typed, int | float) and typed > 0 else None
        return mpp

    def _show(self, outcome: ClassReportOutcome, ready: ReadyResult) -> None:
        model, report = outcome.model, outcome.report
        section = GradeSection(
            report,
            model=model,
            from_cache=bool(ready.provenance.get("from_cache")),
            warning=warning_of(ready.provenance),
            problem=outcome.problem,
        )
        section.go_to.connect(self.go_to)
        title = f"Grade: {model}" if section.graded else f"Class areas: {model}"
        self.panel.add_section(title, section, key=SECTION_PREFIX + model)
        self.sections[model] = section
        self.outcomes[model] = outcome
        for layer in ready.layers:
            layer.provenance[PROVENANCE_KEY] = grade_summary(report)
        if outcome.problem:
            self.message.emit(f"{model}: {outcome.problem}")
        self.shown.emit(outcome)

    def _on_pixel_size_changed(self, mpp: float | None) -> None:
        for model, outcome in list(self.outcomes.items()):
            if outcome.report.get("mpp") != mpp:
                self.request(model)

    # -- views and regions ---------------------------------------------------------------
    def _hint_whole_slide(self, ready: ReadyResult, model: str) -> None:
        """Say, when ``model`` grades, that a view's or region's result is not graded."""
        slide, provenance = ready.slide, dict(ready.provenance)

        def grades() -> bool:
            from inference.models.card import ModelError

            try:
                return bool(result_model_card(provenance).grading)
            except ModelError:
                return False

        def done(answer: object) -> None:
            if answer and slide == self.slide:
                self.message.emit(
                    f"{model} graded nothing: the grade and class areas need a whole-slide "
                    "run (Models panel: Run on whole slide)."
                )

        self.calls.call(grades, done, lambda _error: None, "slidelens-class-report")

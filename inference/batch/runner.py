"""``slidelens batch``'s engine: many slides as Dask tasks, resumable, surviving failures.

Contract of :class:`BatchRun`:

1. :meth:`BatchRun.plan` (no torch, no cluster): identifies the model (its weights'
   SHA-256), removes the temporary folders a crashed run left in OUT, refuses slides
   whose result folder another slide of the batch has, and marks ``skipped`` every slide
   whose folder's record matches its content, the model and the result settings
   (:func:`~inference.batch.record.done_record`); the rest are ``queued``.
2. :meth:`BatchRun.run` plans, then (when anything is queued) gets a cluster
   (:func:`~inference.batch.cluster.open_cluster`, or the client it was given), sends one
   :func:`~inference.batch.task.load_model_task` per worker (a model that does not load
   stops the batch with :class:`BatchSetupError`; one that does stays loaded for the
   slides) and one :func:`~inference.batch.task.run_slide_task` per queued slide, with
   Dask's ``retries``.  A slide that fails every try is ``failed`` with its message; the
   others go on.  A worker that dies mid-slide loses nothing: Dask runs its task again
   elsewhere, and the dead attempt's temporary folder is removed at the end.
   ``OUT/summary.csv`` and ``summary.json`` are rewritten as slides finish and at the end.
3. Ctrl-C (``KeyboardInterrupt``) or the ``cancel`` event stops it: unfinished tasks are
   cancelled (a local cluster is closed, which stops its workers), unfinished slides are
   ``cancelled``, finished ones stay done, and no result folder is half-written
   (they appear by rename only).  ``KeyboardInterrupt`` is raised again afterwards.

Everything about the run reaches the caller through ``listener(update)`` on the thread
that called :meth:`BatchRun.run`; every :class:`BatchUpdate` carries the run's id.
Dask is imported inside the functions only.
"""

from __future__ import annotations

import copy
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inference.batch.cluster import ClusterRequest, open_cluster
from inference.batch.folders import remove_stale
from inference.batch.inputs import BatchItem, duplicate_names
from inference.batch.progress import (
    CANCELLED,
    DONE,
    FAILED,
    QUEUED,
    RUNNING,
    SKIPPED,
    BatchFigures,
    SlideState,
    batch_figures,
)
from inference.batch.record import RunIdentity, SlideRecord, done_record
from inference.batch.settings import SlideSettings
from inference.batch.summary import write_summary
from inference.batch.task import (
    EVENT_TOPIC,
    SlideFailed,
    SlideOutcome,
    TaskEvent,
    TaskSpec,
    load_model_task,
    run_slide_task,
)

#: Seconds between two rewrites of the summary while slides finish.
SUMMARY_INTERVAL_S = 2.0
#: Seconds between two ``tick`` updates (what a progress bar redraws on).
TICK_S = 0.5
#: How often the client loop looks at finished tasks and events.
_POLL_S = 0.05
#: Slides fingerprinted at once while planning (reads of the first and last MiB).
_FINGERPRINT_THREADS = 8


class BatchSetupError(RuntimeError):
    """Nothing could start: the model, the output folder or the cluster (message says)."""


@dataclass(frozen=True)
class ModelIdentity:
    """The model of a batch (no torch needed to know it).

    ``folder`` and ``name``: what ``--model`` named (a patch model, or a slide-level
    head); ``sha256``: what the results are made from, the records' identity (the patch
    model's weights, and a head's weights with them); ``patch_folder`` and
    ``patch_sha256``: the patch model the workers run; ``slide_level``: whether each
    slide also gets a slide-level answer (a head, or a card declaring an aggregation).
    """

    folder: Path
    name: str
    sha256: str
    patch_folder: Path | None = None
    patch_sha256: str = ""
    slide_level: bool = False

    @property
    def patch_model_folder(self) -> Path:
        return self.patch_folder if self.patch_folder is not None else self.folder

    @property
    def patch_model_sha256(self) -> str:
        return self.patch_sha256 or self.sha256


def identify_model(name_or_folder: str) -> ModelIdentity:
    """Resolve ``--model`` and hash its weights; :class:`BatchSetupError` when unusable.

    A slide-level head's folder names its feature extractor, the patch model the
    workers run; the run's identity then hashes both weights files.  A patch model is
    identified by its weights, with what its card says that changes the files: a
    one-output threshold other than 0.5, a grading rule, an aggregation and the
    aggregation head's weights."""
    import hashlib
    import json

    from inference.models import ModelError, file_sha256, load_card, resolve_model
    from inference.models.loading import find_weights
    from inference.models.registry import is_slide_head
    from inference.slide_level.head_card import head_weights, load_head_card

    try:
        folder = resolve_model(name_or_folder).resolve()
        if not is_slide_head(folder):
            card = load_card(folder)
            weights, _kind = find_weights(folder, card)
            sha = file_sha256(weights)
            # what the card says besides the weights that changes the files: a one-output
            # threshold other than 0.5 (the GeoJSON classes), a grading rule (the grade),
            # an aggregation and its head's weights (the slide-level answer)
            outputs: dict[str, Any] = {}
            if card.threshold != 0.5:
                outputs["threshold"] = card.threshold
            if card.grading:
                outputs["grading"] = dict(card.grading)
            if card.aggregation:
                outputs["aggregation"] = dict(card.aggregation)
                head = card.aggregation.get("weights")
                if isinstance(head, str) and (folder / head).is_file():
                    outputs["aggregation_weights"] = file_sha256(folder / head)
            if not outputs:
                return ModelIdentity(folder, str(card.name), sha, folder, sha)
            said = json.dumps(outputs, sort_keys=True, default=str)
            both = hashlib.sha256(f"{sha}+{said}".encode()).hexdigest()
            slide_level = bool(card.aggregation)
            return ModelIdentity(folder, str(card.name), both, folder, sha, slide_level)
        head = load_head_card(folder)
        patch_folder = head.feature_extractor_folder().resolve()
        patch_weights, _kind = find_weights(patch_folder, load_card(patch_folder))
        patch_sha = file_sha256(patch_weights)
        head_sha = file_sha256(head_weights(folder))
        both = hashlib.sha256(f"{patch_sha}+{head_sha}".encode()).hexdigest()
        return ModelIdentity(folder, head.name, both, patch_folder, patch_sha, slide_level=True)
    except (ModelError, OSError) as exc:
        raise BatchSetupError(str(exc)) from exc


@dataclass(frozen=True)
class BatchRequest:
    """One batch: the slides, where results go, the model and the per-slide settings;
    ``retries``: extra tries of a failed slide."""

    items: Sequence[BatchItem]
    out: Path
    model: str
    settings: SlideSettings = field(default_factory=SlideSettings)
    retries: int = 2


@dataclass(frozen=True)
class BatchUpdate:
    """Something happened to a run.

    ``kind``: ``plan`` (``states`` are all slides), ``cluster`` and ``note`` (``message``
    is a line for the user), ``slide`` (``states`` holds the one slide that changed),
    ``tick`` (time passed) and ``end``.  ``states`` are copies: keep them.
    """

    run_id: str
    kind: str
    figures: BatchFigures
    states: tuple[SlideState, ...] = ()
    message: str = ""


Listener = Callable[[BatchUpdate], None]


@dataclass
class BatchOutcome:
    """How a run ended: every slide's state, the figures, and whether it was stopped."""

    run_id: str
    states: list[SlideState]
    figures: BatchFigures
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        """0 when every slide is done or skipped, else 1."""
        return 0 if all(s.status in (DONE, SKIPPED) for s in self.states) else 1


class BatchRun:
    """One run of a batch (see the module docstring).

    ``client``: an existing ``distributed.Client`` to submit to (its cluster is left
    running); otherwise ``cluster`` says which cluster to open.  ``cancel``: set it
    from any thread to stop the run.
    """

    def __init__(
        self,
        request: BatchRequest,
        *,
        cluster: ClusterRequest | None = None,
        client: Any = None,
        listener: Listener | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.request = request
        self.cluster_request = cluster or ClusterRequest()
        self.client = client
        self.listener = listener
        self.cancel = cancel or threading.Event()
        self.run_id = uuid.uuid4().hex
        self.states: list[SlideState] = [SlideState(item) for item in request.items]
        self.model: ModelIdentity | None = None
        self.removed_stale: list[Path] = []
        self.started = datetime.now(UTC).isoformat(timespec="seconds")
        self.cluster_description = ""
        self._t_sent: float | None = None
        self._t_started: float | None = None  # the first slide's start on a worker
        self._last_summary = 0.0
        self._last_tick = 0.0

    # -- planning ----------------------------------------------------------------------

    def plan(self) -> list[SlideState]:
        """Identify the model, clean OUT and mark each slide queued, skipped or failed."""
        request = self.request
        self.model = identify_model(request.model)
        try:
            request.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BatchSetupError(f"cannot create the output folder {request.out}: {exc}") from exc
        self.removed_stale = remove_stale(request.out)
        refused = duplicate_names(request.items)
        for index, message in refused.items():
            self._set(self.states[index], status=FAILED, message=message, notify=False)
        candidates = [s for i, s in enumerate(self.states) if i not in refused]
        if not request.settings.force:
            with ThreadPoolExecutor(_FINGERPRINT_THREADS) as pool:
                records = list(pool.map(self._done_record, candidates))
            for state, record in zip(candidates, records, strict=True):
                if record is not None:
                    self._take_record(state, record)
                    state.status = SKIPPED
        self._emit("plan", states=self.states)
        if self.removed_stale:
            self._note(
                f"removed {len(self.removed_stale)} half-written result folder(s) left by an "
                "earlier run"
            )
        return self.states

    def identity(self, item: BatchItem, source_id: str) -> RunIdentity:
        """What ``item``, of content ``source_id``, must have been made from to be done."""
        assert self.model is not None
        settings = item.settings(self.request.settings).result_settings()
        return RunIdentity(source_id, self.model.sha256, settings)

    def _done_record(self, state: SlideState) -> SlideRecord | None:
        from inference.slides import content_fingerprint

        item = state.item
        try:
            # the same fingerprint open_slide gives the slide as SlideInfo.source_id
            source_id = content_fingerprint(item.slide)
        except OSError:
            return None  # it runs, and fails there with the cause
        folder = self.request.out / item.name
        return done_record(folder, item.slide, item.stem, self.identity(item, source_id))

    def _take_record(self, state: SlideState, record: SlideRecord) -> None:
        state.counts = dict(record.counts)
        state.outputs = dict(record.outputs)
        state.seconds = record.seconds
        state.worker = record.worker
        state.folder = self.request.out / state.name
        state.message = ""

    # -- running ---------------------------------------------------------------------------

    def run(self) -> BatchOutcome:
        """Plan, compute what is queued, write the summary; see the module docstring."""
        self.plan()
        queued = [s for s in self.states if s.status == QUEUED]
        interrupted = False
        why_not = "the batch was stopped first"
        try:
            if queued and not self.cancel.is_set():
                self._execute(queued)
        except KeyboardInterrupt:
            interrupted = True
            raise
        except BatchSetupError as exc:
            why_not = f"not run: {exc}"
            raise
        finally:
            interrupted = interrupted or self.cancel.is_set()
            for state in self.states:
                if state.finished:
                    continue
                record = self._done_record(state)  # finished while the run was stopping
                if record is not None:
                    self._take_record(state, record)
                    self._set(state, status=DONE)
                else:
                    self._set(state, status=CANCELLED, message=why_not)
            if not interrupted or self.client is None:
                # no task of this run writes any more: its workers are done or closed
                remove_stale(self.request.out)
            self._write_summary()
            self._emit("end")
        return BatchOutcome(self.run_id, self.states, self.figures(), interrupted)

    def _execute(self, queued: list[SlideState]) -> None:
        from inference.batch.cluster import ClusterError

        if self.client is not None:
            self.cluster_description = "the given Dask client"
            self._submit_and_wait(self.client, queued, None)
            return
        try:
            opened = open_cluster(self.cluster_request, self.request.settings.device)
            cluster = opened.__enter__()
        except ClusterError as exc:
            raise BatchSetupError(str(exc)) from exc
        try:
            self.cluster_description = cluster.describe()
            lines = [cluster.describe()]
            lines.append(
                f"dashboard: {cluster.dashboard}" if cluster.dashboard else cluster.dashboard_note
            )
            self._emit("cluster", message="\n".join(lines))
            self._submit_and_wait(cluster.client, queued, cluster.slides_per_host)
        except BaseException as exc:
            opened.__exit__(type(exc), exc, exc.__traceback__)
            raise
        opened.__exit__(None, None, None)

    def _submit_and_wait(self, client: Any, queued: list[SlideState], per_host: int | None) -> None:
        from distributed import as_completed

        assert self.model is not None
        spec = TaskSpec(
            run_id=self.run_id,
            out=self.request.out.resolve(),
            model_folder=self.model.patch_model_folder,
            model_name=self.model.name,
            model_sha256=self.model.patch_model_sha256,
            identity_sha256=self.model.sha256,
            pipeline_folder=self.model.folder if self.model.slide_level else None,
            settings=self.request.settings,
            slides_per_host=per_host,
        )
        events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        client.subscribe_topic(EVENT_TOPIC, lambda event: events.put(event[1]))
        futures: dict[Any, SlideState] = {}
        checks: list[Any] = []
        try:
            self._t_sent = time.perf_counter()
            # every worker loads the model first (kept for its slides): a bad model
            # stops the batch with its message before any slide fails of it
            for address in client.scheduler_info().get("workers", {}):
                checks.append(
                    client.submit(
                        load_model_task,
                        spec,
                        key=f"slidelens-model-{self.run_id[:12]}-{len(checks)}",
                        workers=[address],
                        priority=10,
                        pure=False,
                    )
                )
            for index, state in enumerate(queued):
                future = client.submit(
                    run_slide_task,
                    state.item,
                    spec,
                    key=f"slidelens-batch-{self.run_id[:12]}-{index}",
                    retries=self.request.retries,
                    priority=-index,  # in the batch's order, as far as workers are free
                    pure=False,
                )
                futures[future] = state
            pending = as_completed(futures)
            while not pending.is_empty():
                if self.cancel.is_set():
                    break
                self._check_model(checks)
                self._drain(events)
                for future in pending.next_batch(block=False):
                    self._finish(futures[future], future)
                self._tick()
                time.sleep(_POLL_S)
            self._drain(events)
        finally:
            unfinished = [f for f, s in futures.items() if not s.finished]
            if unfinished or checks:
                client.cancel([*unfinished, *checks])
            client.unsubscribe_topic(EVENT_TOPIC)

    def _check_model(self, checks: list[Any]) -> None:
        """Raise :class:`BatchSetupError` with the model's error when a worker could not
        load it (a worker that died meanwhile says nothing about the model)."""
        for future in list(checks):
            if future.status == "error":
                exc = future.exception()
                if isinstance(exc, SlideFailed):
                    raise BatchSetupError(str(exc))
            if future.status != "pending":
                checks.remove(future)

    def _drain(self, events: queue.SimpleQueue[Any]) -> None:
        by_name = {s.name: s for s in self.states}
        while True:
            try:
                event = TaskEvent.from_msg(events.get_nowait())
            except queue.Empty:
                return
            if event is None or event.run_id != self.run_id:
                continue  # another run's slide
            state = by_name.get(event.name)
            if state is None or state.finished:
                continue
            if event.kind == "start":
                if self._t_started is None:
                    self._t_started = time.perf_counter()
                attempt = state.attempts + 1
                self._set(
                    state, status=RUNNING, attempts=attempt, worker=event.worker, done=0, total=0
                )
                if attempt > 1:
                    self._note(f"{state.name}: started again on {event.worker} (try {attempt})")
            elif event.kind == "patches":
                self._set(state, status=RUNNING, done=event.done, total=event.total)

    def _finish(self, state: SlideState, future: Any) -> None:
        from distributed import KilledWorker

        if future.status == "finished":
            outcome: SlideOutcome = future.result()
            self._take_record(state, outcome.record)
            state.attempts = max(state.attempts, 1)
            self._set(state, status=DONE, done=state.total)
        elif future.status == "cancelled":
            self._set(state, status=CANCELLED, message="cancelled")
        else:
            exc = future.exception()
            if isinstance(exc, SlideFailed):
                message = str(exc)
            elif isinstance(exc, KilledWorker):
                message = (
                    "every worker that ran it died (the slide may crash its reader or "
                    f"exhaust a worker's memory): {exc}"
                )
            else:
                message = f"unexpected {type(exc).__name__}: {exc}"
            state.attempts = max(state.attempts, 1)
            self._set(state, status=FAILED, message=message)
        if time.perf_counter() - self._last_summary > SUMMARY_INTERVAL_S:
            self._write_summary()

    # -- reporting -------------------------------------------------------------------------

    def figures(self) -> BatchFigures:
        """The run's figures, timed from the first slide's start on a worker (the cluster's
        start and the workers' loading the model are not slide time)."""
        since = self._t_started if self._t_started is not None else self._t_sent
        elapsed = 0.0 if since is None else time.perf_counter() - since
        return batch_figures(self.states, elapsed)

    def _set(self, state: SlideState, *, notify: bool = True, **changes: Any) -> None:
        for key, value in changes.items():
            setattr(state, key, value)
        if notify:
            self._emit("slide", states=[state])

    def _note(self, message: str) -> None:
        self._emit("note", message=message)

    def _tick(self) -> None:
        now = time.perf_counter()
        if now - self._last_tick >= TICK_S:
            self._last_tick = now
            self._emit("tick")

    def _emit(self, kind: str, states: Sequence[SlideState] = (), message: str = "") -> None:
        if self.listener is None:
            return
        copies = tuple(copy.deepcopy(s) for s in states)
        self.listener(BatchUpdate(self.run_id, kind, self.figures(), copies, message))

    def _write_summary(self) -> None:
        self._last_summary = time.perf_counter()
        figures = self.figures()
        model = self.model
        run = {
            "id": self.run_id,
            "started": self.started,
            "written": datetime.now(UTC).isoformat(timespec="seconds"),
            "model": None if model is None else model.name,
            "model_folder": None if model is None else str(model.folder),
            "model_sha256": None if model is None else model.sha256,
            "settings": self.request.settings.result_settings(),
            "cluster": self.cluster_description,
            "slides": figures.total,
            "done": figures.done,
            "skipped": figures.skipped,
            "failed": figures.failed,
            "cancelled": figures.cancelled,
            "patches": figures.patches,
            "patches_per_s": round(figures.patches_per_s, 3),
            "elapsed_s": round(figures.elapsed_s, 3),
        }
        try:
            write_summary(self.request.out, self.states, run)
        except OSError as exc:
            self._note(f"could not write the summary in {self.request.out}: {exc}")

"""The Dask task of a batch: one slide, on a worker, into its result folder.

Contract: :func:`run_slide_task` runs :func:`~inference.batch.one_slide.infer_slide` for
one :class:`~inference.batch.inputs.BatchItem` into a temporary folder, adds the slide's
:class:`~inference.batch.record.SlideRecord` (with its slide-level outputs) and
publishes the folder (:func:`~inference.batch.folders.publish`), so ``OUT/<name>`` is
whole or absent.  It returns a :class:`SlideOutcome`, or raises :class:`SlideFailed`
whose message names the cause (Dask retries it up to ``--retries`` times).  A worker
that dies mid-slide leaves only a hidden temporary folder; Dask runs the task again
elsewhere.

On a Dask worker it also posts :class:`TaskEvent`\\ s (``start``, then ``patches`` at
most every :data:`EVENT_INTERVAL_S`) on the topic :data:`EVENT_TOPIC`, each naming the
batch run and the slide.  Each worker process loads the model once (per device) and
keeps it.  The device: ``auto`` or ``cuda`` on a worker that sees GPUs is GPU
``name % count`` (a local cluster names its workers 0, 1, ...: one worker per GPU);
on the CPU each slide's lanes get the worker host's cores shared out among the slides
it runs at once, unless ``--cpu-lanes`` / ``--torch-threads`` say otherwise.

Dask and torch are imported inside the functions only.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inference.batch.folders import partial_folder, publish
from inference.batch.inputs import BatchItem
from inference.batch.one_slide import describe_failure, infer_slide
from inference.batch.record import RunIdentity, SlideRecord, done_record, write_record
from inference.batch.settings import SlideSettings

if TYPE_CHECKING:
    from inference.engine.job import BatchResult, ModelLike
    from inference.slide_level.aggregate import Aggregator

#: The Dask event topic of batch progress.
EVENT_TOPIC = "slidelens-batch"
#: Least time between two ``patches`` events of one slide.
EVENT_INTERVAL_S = 0.25


class SlideFailed(Exception):
    """A slide could not be computed; the message says why (naming the file)."""


@dataclass(frozen=True)
class TaskSpec:
    """What every task of one batch run shares (pickled to the workers).

    ``model_folder`` is the patch model, resolved on the client; workers must see the
    same path (shared storage on a cluster).  ``model_sha256`` is its weights' hash (a
    worker checks it), ``identity_sha256`` what the records name (with a slide-level
    head, both weights; ``""``: ``model_sha256``).  ``pipeline_folder``: the folder the
    user named when each slide also gets a slide-level answer (a head, or a patch model
    whose card declares an aggregation; see
    :func:`~inference.slide_level.pipeline.resolve_pipeline`).  ``slides_per_host`` is
    how many slides run at once on one machine (a local cluster's workers x threads);
    ``None`` on a remote cluster, where a worker's own thread count is used.
    """

    run_id: str
    out: Path
    model_folder: Path
    model_name: str
    model_sha256: str
    settings: SlideSettings
    slides_per_host: int | None = None
    identity_sha256: str = ""
    pipeline_folder: Path | None = None

    @property
    def record_sha256(self) -> str:
        """The model identity the slides' records carry."""
        return self.identity_sha256 or self.model_sha256


@dataclass(frozen=True)
class SlideOutcome:
    """A finished slide: its record, and ``published=False`` when an equal result was
    already in place (another attempt of the same slide got there first)."""

    record: SlideRecord
    published: bool


@dataclass(frozen=True)
class TaskEvent:
    """Progress of one slide of one run, as posted by its worker."""

    run_id: str
    name: str
    kind: str  # "start" or "patches"
    worker: str = ""
    pid: int = 0
    done: int = 0
    total: int = 0

    def to_msg(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_msg(cls, msg: Any) -> TaskEvent | None:
        """The event in a Dask event message, or ``None`` for anything else."""
        if not isinstance(msg, dict):
            return None
        try:
            return cls(
                run_id=str(msg["run_id"]),
                name=str(msg["name"]),
                kind=str(msg["kind"]),
                worker=str(msg.get("worker", "")),
                pid=int(msg.get("pid", 0)),
                done=int(msg.get("done", 0)),
                total=int(msg.get("total", 0)),
            )
        except (KeyError, TypeError, ValueError):
            return None


# -- the worker's side -------------------------------------------------------------------------

_models: dict[tuple[str, str, str], ModelLike] = {}
_aggregators: dict[tuple[str, str], Aggregator | None] = {}
_models_lock = threading.Lock()


def _model(spec: TaskSpec, device: str) -> ModelLike:
    """The run's model on ``device``, loaded once per worker process."""
    from inference.models import load_model

    key = (str(spec.model_folder), spec.model_sha256, device)
    with _models_lock:
        model = _models.get(key)
        if model is None:
            loaded: ModelLike = load_model(
                spec.model_folder, trust=spec.settings.trust, device=device
            )
            if loaded.sha256 != spec.model_sha256:
                raise SlideFailed(
                    f"{spec.model_folder}: the model's weights changed since the batch "
                    "started; run the batch again"
                )
            _models.clear()  # one model per process: a new run's model replaces the old
            _models[key] = model = loaded
        return model


def _aggregator(spec: TaskSpec) -> Aggregator | None:
    """The run's slide-level aggregator (``None`` without one), made once per worker
    process; raises :class:`SlideFailed` when it cannot be made."""
    if spec.pipeline_folder is None:
        return None
    from inference.models import ModelError
    from inference.slide_level.pipeline import resolve_pipeline

    key = (str(spec.pipeline_folder), spec.record_sha256)
    with _models_lock:
        if key not in _aggregators:
            try:
                pipeline = resolve_pipeline(spec.pipeline_folder, trust=spec.settings.trust)
            except ModelError as exc:
                raise SlideFailed(str(exc)) from exc
            if pipeline.patch_folder.resolve() != Path(spec.model_folder).resolve():
                raise SlideFailed(
                    f"{spec.pipeline_folder}: its patch model changed since the batch "
                    "started; run the batch again"
                )
            _aggregators.clear()
            _aggregators[key] = pipeline.aggregator
        return _aggregators[key]


def _worker() -> Any:
    """The Dask worker running this task, or ``None`` outside Dask."""
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return None


def _device(requested: str, worker: Any) -> str:
    """The device this worker uses (see the module docstring)."""
    from inference.engine.device import resolve_device

    device = resolve_device(requested)
    if device != "cuda":
        return device
    import torch

    count = torch.cuda.device_count()
    name = getattr(worker, "name", None)
    index = name if isinstance(name, int) else 0
    return f"cuda:{index % max(1, count)}"


def _share_cores(
    settings: SlideSettings, device: str, spec: TaskSpec, worker: Any
) -> SlideSettings:
    """On the CPU, the lanes of one slide: this host's cores over the slides it runs."""
    from inference.engine.cores import available_cores

    if not device.startswith("cpu") or settings.cpu_lanes or settings.torch_threads:
        return settings
    at_once = spec.slides_per_host or int(getattr(getattr(worker, "state", None), "nthreads", 1))
    lanes = max(1, available_cores() // max(1, at_once))
    return replace(settings, cpu_lanes=lanes, torch_threads=1)


class _Events:
    """Posts a slide's progress as Dask events (nothing outside a worker)."""

    def __init__(self, worker: Any, run_id: str, name: str) -> None:
        self.worker = worker
        self.run_id = run_id
        self.name = name
        self._last = 0.0

    def post(self, kind: str, done: int = 0, total: int = 0) -> None:
        if self.worker is None:
            return
        event = TaskEvent(
            self.run_id, self.name, kind, str(self.worker.address), os.getpid(), done, total
        )
        self.worker.log_event(EVENT_TOPIC, event.to_msg())

    # PatchProgress
    def update(self, batch: BatchResult) -> None:
        now = time.monotonic()
        if now - self._last >= EVENT_INTERVAL_S or batch.done >= batch.total:
            self._last = now
            self.post("patches", batch.done, batch.total)

    def close(self, note: str = "") -> None:
        pass


def load_model_task(spec: TaskSpec) -> str:
    """Load the run's model on this worker (kept for its slides); its SHA-256.

    The batch runner sends one per worker ahead of the slides: a model that cannot load
    stops the batch with its message instead of failing every slide.
    """
    worker = _worker()
    try:
        _aggregator(spec)  # a head that cannot load stops the batch here too
        return _model(spec, _device(spec.settings.device, worker)).sha256
    except SlideFailed:
        raise
    except Exception as exc:
        raise SlideFailed(describe_failure(exc)) from exc


def run_slide_task(item: BatchItem, spec: TaskSpec) -> SlideOutcome:
    """Compute one slide into ``spec.out / item.name`` (see the module docstring)."""
    worker = _worker()
    events = _Events(worker, spec.run_id, item.name)
    events.post("start")
    started = time.perf_counter()
    partial: Path | None = None
    try:
        device = _device(spec.settings.device, worker)
        asked = item.settings(spec.settings)
        settings = _share_cores(asked, device, spec, worker)
        model = _model(spec, device)
        aggregator = _aggregator(spec)
        partial = partial_folder(spec.out, item.name)
        run = infer_slide(
            item.slide,
            model,
            settings,
            device,
            partial,
            stem=item.stem,
            progress=lambda _: events,
            aggregator=aggregator,
        )
        from inference.results.grading import GradingSpec
        from inference.results.slide_level import slide_level_outputs

        grading = GradingSpec.from_card(model.card)
        outputs = (
            slide_level_outputs(run.result, grading, threshold=model.card.threshold)
            if run.result is not None
            else {}
        )
        if run.answer is not None:
            outputs.update(run.answer.output_columns())
        record = SlideRecord(
            slide=str(item.slide),
            name=item.name,
            stem=item.stem,
            source_id=run.source_id,
            model=spec.model_name,
            model_sha256=spec.record_sha256,
            settings=asked.result_settings(),
            seconds=round(time.perf_counter() - started, 3),
            counts=run.counts,
            outputs=outputs,
            finished=datetime.now(UTC).isoformat(timespec="seconds"),
            worker=str(getattr(worker, "address", "")),
        )
        write_record(partial, record)
        identity = RunIdentity(record.source_id, record.model_sha256, record.settings)
        published = publish(
            partial,
            spec.out / item.name,
            lambda final: done_record(final, item.slide, item.stem, identity) is not None,
        )
        partial = None
        return SlideOutcome(record, published)
    except SlideFailed:
        raise
    except Exception as exc:
        raise SlideFailed(describe_failure(exc)) from exc
    finally:
        if partial is not None:
            shutil.rmtree(partial, ignore_errors=True)

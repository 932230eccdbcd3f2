"""The shared/exclusive gate: forward passes share a model, an explanation has it alone."""

from __future__ import annotations

import threading
import time

import numpy as np
import torch

from inference.core.threads import SharedExclusiveLock, use_gate
from inference.engine.job import InferenceJob
from inference.engine.runner import run
from tests.helpers.models import TinyModel
from tests.helpers.slides import ArraySource, tissue_image


def test_shared_holders_overlap_and_exclusive_waits_for_them() -> None:
    gate = SharedExclusiveLock()
    events: list[str] = []
    both_in = threading.Barrier(3)

    def reader(name: str) -> None:
        with gate.shared():
            both_in.wait()  # two shared holders at once, or this would never return
            time.sleep(0.05)
            events.append(f"{name} out")

    readers = [threading.Thread(target=reader, args=(n,)) for n in ("a", "b")]
    for t in readers:
        t.start()
    both_in.wait()
    with gate.exclusive():
        events.append("exclusive in")
    for t in readers:
        t.join()
    assert events[-1] == "exclusive in" and sorted(events[:2]) == ["a out", "b out"]


def test_a_waiting_exclusive_holder_stops_new_shared_ones() -> None:
    gate = SharedExclusiveLock()
    order: list[str] = []
    first_in = threading.Event()
    release_first = threading.Event()

    def first() -> None:
        with gate.shared():
            first_in.set()
            release_first.wait()

    def exclusive() -> None:
        with gate.exclusive():
            order.append("exclusive")

    def late_shared() -> None:
        with gate.shared():
            order.append("late shared")

    t1 = threading.Thread(target=first)
    t1.start()
    first_in.wait()
    t2 = threading.Thread(target=exclusive)
    t2.start()
    while not gate._exclusive_waiting:  # the exclusive holder is waiting now
        time.sleep(0.001)
    t3 = threading.Thread(target=late_shared)
    t3.start()
    time.sleep(0.05)
    assert order == []  # the late shared holder waits behind the exclusive one
    release_first.set()
    for t in (t1, t2, t3):
        t.join(timeout=5)
    assert order == ["exclusive", "late shared"]


def test_the_exclusive_holder_may_also_take_it_shared() -> None:
    """Re-entry by the exclusive holder does not deadlock, and the gate is free after."""
    gate = SharedExclusiveLock()
    entered: list[str] = []

    def nested() -> None:
        with gate.exclusive(), gate.shared(), gate.exclusive():
            entered.append("nested")

    holder = threading.Thread(target=nested, daemon=True)
    holder.start()
    holder.join(5.0)
    assert not holder.is_alive(), "the exclusive holder deadlocked on its own gate"
    assert entered == ["nested"]

    def other() -> None:  # another thread can now take it both ways
        with gate.exclusive():
            entered.append("exclusive")
        with gate.shared():
            entered.append("shared")

    taker = threading.Thread(target=other, daemon=True)
    taker.start()
    taker.join(5.0)
    assert not taker.is_alive(), "the gate stayed held after the nested holder left"
    assert entered == ["nested", "exclusive", "shared"]


def test_cpu_lanes_run_no_forward_pass_while_the_model_is_held_exclusively() -> None:
    model = TinyModel()
    calls: list[float] = []
    inner = model.module

    class Counting(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            calls.append(time.perf_counter())
            return self.inner(x)

    model.module = Counting()
    job = InferenceJob(
        ArraySource(tissue_image(256, 256)),
        model,
        device="cpu",
        batch_size=4,
        tissue_threshold=0,
        cpu_lanes=2,
    )
    gate = use_gate(model.module)
    results = run(job)
    first = next(results)  # lanes are running
    with gate.exclusive():
        held_from = time.perf_counter()
        time.sleep(0.2)
        held_to = time.perf_counter()
    rest = list(results)
    assert not [t for t in calls if held_from <= t <= held_to]
    assert sum(len(b) for b in [first, *rest]) == 64
    assert np.all(np.isfinite(np.concatenate([b.probs for b in [first, *rest]])))

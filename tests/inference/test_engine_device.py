"""The device rules the engine and the explanations share: one mixed-precision policy, one
out-of-memory halving loop (no GPU needed: CUDA is simulated with fakes)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import inference.engine.device as device_rules
from inference.engine.device import (
    amp_dtype,
    host_batch,
    is_out_of_memory,
    is_torch_oom,
    precision_name,
    run_halving,
)
from inference.engine.forward import Forward
from inference.engine.job import InferenceError
from inference.explain.cam_runners import score_cam_weights
from inference.explain.hook_free import HookFreeRunner
from inference.explain.methods import ExplainError, method_spec
from inference.explain.progress import BatchLoop, ProgressTracker
from inference.explain.requests import CamRequest
from inference.explain.runner_base import RunSettings
from inference.explain.service import explain_patch
from inference.explain.targets import ClassTarget
from tests.helpers.models import DarknessModel, TinyModel
from tests.helpers.slides import ArraySource, two_tone


def _noise(n: int, side: int, seed: int = 0) -> np.ndarray:
    """``(n, side, side, 3)`` uint8 RGB noise: read patches as the engine's readers give them."""
    return np.random.default_rng(seed).integers(0, 256, (n, side, side, 3), np.uint8)


# -- one mixed-precision policy ------------------------------------------------------------


@pytest.mark.parametrize(("bf16", "expected"), [(True, torch.bfloat16), (False, torch.float16)])
def test_the_policy_is_bf16_where_supported_else_fp16_on_cuda_and_none_on_the_cpu(
    monkeypatch: pytest.MonkeyPatch, bf16: bool, expected: torch.dtype
) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    for device in ("cuda", "cuda:1", torch.device("cuda", 0)):
        assert amp_dtype(device) == expected
    assert amp_dtype("cpu") is None and amp_dtype(torch.device("cpu")) is None
    assert precision_name(amp_dtype("cuda")) == ("bf16" if bf16 else "fp16")
    assert precision_name(None) == "fp32"
    # the engine's forward pass takes its dtype from the policy (constructing it runs nothing)
    assert Forward(TinyModel(), "cuda", None).dtype == expected
    assert Forward(TinyModel(), "cpu", None).precision == "fp32"


class AutocastSpy(torch.nn.Module):
    """Records the CPU autocast dtype of every forward pass (``None`` when autocast is off)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.seen: list[torch.dtype | None] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        on = torch.is_autocast_enabled("cpu")
        self.seen.append(torch.get_autocast_dtype("cpu") if on else None)
        out: torch.Tensor = self.inner(x)
        return out


@pytest.mark.parametrize(("bf16", "expected"), [(True, torch.bfloat16), (False, torch.float16)])
def test_engine_and_explanations_autocast_to_the_same_dtype(
    monkeypatch: pytest.MonkeyPatch, bf16: bool, expected: torch.dtype
) -> None:
    """With the policy told the CPU is a GPU (so its autocast can run here), the engine's
    forward passes and the explanations' autocast passes (Score-CAM's masked inputs,
    occlusion's windows) all run under the dtype the policy picks, and the explanation's
    provenance records the precision the engine records."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(device_rules, "is_cuda", lambda device: True)

    engine_model = TinyModel()
    engine_spy = AutocastSpy(engine_model.module)
    engine_model.module = engine_spy
    forward = Forward(engine_model, "cpu", None)
    forward(host_batch(_noise(3, 32)))
    assert engine_spy.seen == [expected]

    dark = DarknessModel()
    spy = AutocastSpy(dark.module)
    tracker = ProgressTracker(None)
    device = torch.device("cpu")
    x = dark.preprocess(two_tone(32, 32)[None])
    glass = torch.ones_like(x)
    settings = RunSettings(patch_batch=4, masked_batch=64, occlusion_grid=2, baseline=glass)
    loop = BatchLoop(tracker, 64, device, counts=False)
    occlusion = HookFreeRunner(method_spec("occlusion"), spy, settings, loop, loop)
    occlusion(x, [ClassTarget(0)])
    activations = np.random.default_rng(0).random((1, 4, 8, 8)).astype(np.float32)
    score_cam_weights(spy, x, [ClassTarget(0)], activations, loop)
    assert spy.seen and set(spy.seen) == {expected}

    result = explain_patch(
        ArraySource(two_tone(), mpp=0.5), dark, 10, 10, CamRequest(method="occlusion")
    )
    assert result.provenance["settings"]["amp"] == forward.precision == precision_name(expected)


def test_explanations_without_autocast_stay_fp32_on_the_cpu() -> None:
    result = explain_patch(
        ArraySource(two_tone(), mpp=0.5), DarknessModel(), 10, 10, CamRequest(method="occlusion")
    )
    assert result.provenance["settings"]["amp"] == "fp32"


# -- one out-of-memory halving loop ----------------------------------------------------------


class FakeGpu:
    """``fn(start, stop)`` that runs out of memory on more than ``cap`` items."""

    def __init__(self, cap: int, error: type[Exception] | None = None, text: str = "") -> None:
        self.cap = cap
        self.error = error
        self.text = text or "CUDA out of memory (test)"
        self.calls: list[tuple[int, int]] = []

    def __call__(self, start: int, stop: int) -> np.ndarray:
        self.calls.append((start, stop))
        if stop - start > self.cap:
            raise (self.error or torch.OutOfMemoryError)(self.text)
        return np.arange(start, stop)


def _empty_cache_counter(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    emptied: list[int] = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(1))
    return emptied


def test_halving_retries_the_batch_and_keeps_the_smaller_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emptied = _empty_cache_counter(monkeypatch)
    gpu = FakeGpu(cap=3)
    halved: list[tuple[int, int]] = []
    events: list[str] = []
    out = run_halving(
        10,
        gpu,
        8,
        cuda=True,
        too_big=lambda exc: AssertionError("never"),
        before=lambda: events.append("before"),
        after=lambda size: events.append(f"after {size}"),
        halved=lambda size, new: halved.append((size, new)),
    )
    np.testing.assert_array_equal(out, np.arange(10))  # every item once, in order
    assert gpu.calls == [(0, 8), (0, 4), (0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    assert halved == [(8, 4), (4, 2)] and len(emptied) == 2
    assert events.count("before") == 7  # before every try, retries included
    assert [e for e in events if e != "before"] == ["after 2"] * 5
    run_halving(4, FakeGpu(cap=3), 8, cuda=False, too_big=lambda exc: AssertionError())
    assert len(emptied) == 2  # the CUDA cache is emptied on CUDA only


def test_halving_gives_up_at_one_item_with_the_callers_error() -> None:
    gpu = FakeGpu(cap=0)
    with pytest.raises(InferenceError, match="even one") as info:
        run_halving(5, gpu, 4, cuda=False, too_big=lambda exc: InferenceError("even one"))
    assert isinstance(info.value.__cause__, torch.OutOfMemoryError)
    assert gpu.calls == [(0, 4), (0, 2), (0, 1)]


def test_halving_leaves_other_errors_alone_and_the_caller_says_what_is_out_of_memory() -> None:
    def never(exc: BaseException) -> BaseException:
        raise AssertionError("not out of memory")

    boom = FakeGpu(cap=0, error=RuntimeError, text="boom")
    with pytest.raises(RuntimeError, match="boom"):
        run_halving(4, boom, 4, cuda=False, too_big=never, is_oom=is_out_of_memory)
    assert len(boom.calls) == 1
    # the message of an old-style RuntimeError: out of memory for the explanations' rule,
    # not for the engine's (torch's own error type only)
    worded = FakeGpu(cap=1, error=RuntimeError, text="CUDA out of memory. Tried to allocate")
    out = run_halving(4, worded, 4, cuda=False, too_big=never, is_oom=is_out_of_memory)
    np.testing.assert_array_equal(out, np.arange(4))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory"))
    assert not is_torch_oom(RuntimeError("CUDA out of memory"))
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        run_halving(4, FakeGpu(cap=1, error=RuntimeError), 4, cuda=False, too_big=never)


def test_the_engine_forward_remembers_its_halved_batch_and_fails_with_inference_error() -> None:
    model = TinyModel()
    calls: list[int] = []
    inner = model.module

    class CapAt(torch.nn.Module):
        cap = 2

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            calls.append(len(x))
            if len(x) > self.cap:
                raise torch.OutOfMemoryError("CUDA out of memory (test)")
            out: torch.Tensor = inner(x)
            return out

    capped = CapAt()
    model.module = capped
    forward = Forward(model, "cpu", None)
    assert forward(host_batch(_noise(5, 32))).shape == (5, 2)
    assert calls == [5, 2, 2, 1] and forward.max_chunk == 2
    calls.clear()
    forward(host_batch(_noise(4, 32)))
    assert calls == [2, 2]  # the halved size stays
    capped.cap = 0
    with pytest.raises(InferenceError, match="even with a batch of one patch"):
        forward(host_batch(_noise(2, 32)))


def test_the_explanations_batch_loop_counts_checks_cancel_and_keeps_its_halved_size() -> None:
    seen: list[tuple[int, int]] = []
    tracker = ProgressTracker(lambda done, total: seen.append((done, total)))
    tracker.start(16)
    loop = BatchLoop(tracker, 8, torch.device("cpu"), counts=True)
    worded = FakeGpu(cap=3, error=RuntimeError, text="CUDA out of memory. Tried to allocate")
    np.testing.assert_array_equal(loop.run(8, worded), np.arange(8))
    assert loop.batch_size == 2 and loop.halvings == 2
    assert seen[1:] == [(2, 16), (4, 16), (6, 16), (8, 16)]
    np.testing.assert_array_equal(loop.run(8, worded), np.arange(8))
    assert worded.calls[-4:] == [(0, 2), (2, 4), (4, 6), (6, 8)]  # starts at the halved size
    with pytest.raises(ExplainError, match="even with a batch of one"):
        BatchLoop(tracker, 2, torch.device("cpu"), counts=False).run(3, FakeGpu(cap=0))


# -- the worker owns the device (CUDA simulated: no GPU needed) ------------------------------

#: What each operation on a simulated device tensor belongs to (others are bookkeeping).
_STAGE_OF_OP = {
    "to": "convert",
    "float": "convert",
    "div_": "convert",
    "interpolate": "resize",
    "__sub__": "normalise",
    "sub": "normalise",
    "__truediv__": "normalise",
    "div": "normalise",
    "conv2d": "forward",
}
_STEP = ["upload", "convert", "resize", "normalise", "forward"]


class SimulatedCuda:
    """CUDA without a GPU, for the engine's order of operations.

    torch says a GPU is there; ``Tensor.pin_memory`` makes a :class:`Pinned` copy (still in
    CPU memory); ``Tensor.to("cuda...")`` makes an ``OnDevice`` copy (CPU memory too), as
    does ``torch.tensor(..., device="cuda...")``, and every torch operation on an
    ``OnDevice`` tensor is a device operation.  ``events``
    holds ``(what, thread name, batch length)`` for pinning, uploads and every device
    operation, in the order they happened; ``fail_at`` (an entry of ``_STEP``) raises
    ``torch.OutOfMemoryError`` in that stage for more than ``cap`` patches.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, str, int]] = []
        self.uploads: list[tuple[bool, bool]] = []  # (from pinned memory, non_blocking)
        self.fail_at: str | None = None
        self.cap = 0
        self._lock = threading.Lock()
        sim = self

        class Pinned(torch.Tensor):
            """A tensor in (simulated) page-locked memory: slices of it are too."""

        class OnDevice(torch.Tensor):
            """A tensor on the simulated GPU: every operation on it is recorded."""

            @classmethod
            def __torch_function__(
                cls, func: Any, types: Any, args: Any = (), kwargs: Any = None
            ) -> Any:
                name = getattr(func, "__name__", str(func))
                if name not in ("__get__", "__len__"):  # .shape, .ndim, len(): no device work
                    first = args[0] if args else None
                    with torch._C.DisableTorchFunctionSubclass():
                        tensor = isinstance(first, torch.Tensor) and first.ndim > 0
                        n = len(first) if tensor else 0
                    sim.record(name, n)
                    sim.maybe_fail(_STAGE_OF_OP.get(name), n)
                return super().__torch_function__(func, types, args, kwargs or {})

        self.pinned_type = Pinned
        real_to = torch.Tensor.to
        real_clone = torch.Tensor.clone

        def to(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            target = kwargs.get("device", args[0] if args else None)
            if str(target).startswith("cuda"):
                with self._lock:
                    self.uploads.append(
                        (isinstance(tensor, Pinned), bool(kwargs.get("non_blocking")))
                    )
                self.record("upload", len(tensor))
                self.maybe_fail("upload", len(tensor))
                return real_clone(tensor.as_subclass(torch.Tensor)).as_subclass(OnDevice)
            return real_to(tensor, *args, **kwargs)

        real_tensor = torch.tensor

        def tensor(data: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
            if not str(kwargs.get("device")).startswith("cuda"):
                return real_tensor(data, *args, **kwargs)
            self.record("tensor", 0)  # made on the device: a device operation too
            kwargs["device"] = "cpu"
            return real_tensor(data, *args, **kwargs).as_subclass(OnDevice)

        def pin_memory(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            self.record("pin", len(tensor))
            return real_clone(tensor).as_subclass(Pinned)

        self.emptied = 0

        def empty_cache() -> None:
            self.emptied += 1

        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
        monkeypatch.setattr(torch.cuda, "empty_cache", empty_cache)
        monkeypatch.setattr(torch.Tensor, "to", to)
        monkeypatch.setattr(torch.Tensor, "pin_memory", pin_memory)
        monkeypatch.setattr(torch, "tensor", tensor)

    def record(self, what: str, n: int) -> None:
        with self._lock:
            self.events.append((what, threading.current_thread().name, n))

    def maybe_fail(self, stage: str | None, n: int) -> None:
        if stage is not None and stage == self.fail_at and n > self.cap:
            raise torch.OutOfMemoryError(f"CUDA out of memory in {stage} (test)")

    def chunks(self) -> list[list[str]]:
        """The device operations after each upload, as stages in the order first seen."""
        out: list[list[str]] = []
        for what, _, _ in self.events:
            if what == "upload":
                out.append(["upload"])
            elif out and (stage := _STAGE_OF_OP.get(what)) and stage not in out[-1]:
                out[-1].append(stage)
        return out


def _resizing_model(folder: Path) -> Any:
    """The small_cnn test classifier with 64 px patches resized to 48 px by the model."""
    from inference.models import load_model
    from tests.helpers.models import write_model_folder

    write_model_folder(folder)
    card = json.loads((folder / "config.json").read_text())
    card["transform"][0]["arguments"]["size"] = 48
    (folder / "config.json").write_text(json.dumps(card))
    model = load_model(folder)
    assert model.card.input_size == 48 and model.card.patch_size_pixels == 64
    return model


def _probs(model: Any, device: str, **job: Any) -> tuple[np.ndarray, np.ndarray]:
    from inference.engine.job import InferenceJob
    from inference.engine.runner import run
    from tests.helpers.slides import tissue_image

    source = ArraySource(tissue_image(256, 128, seed=3), mpp=1.0)
    batches = list(
        run(InferenceJob(source, model, device=device, batch_size=4, tissue_threshold=0, **job))
    )
    return np.concatenate([b.p_ij for b in batches]), np.concatenate([b.probs for b in batches])


def test_on_cuda_readers_only_pin_and_the_worker_uploads_converts_resizes_normalises_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 11, item 9: readers make pinned uint8 batches and do nothing on the device;
    the thread running the model copies each batch without blocking, then converts,
    resizes and normalises it on the device and runs the model, in that order."""
    cpu_pij, cpu_probs = _probs(_resizing_model(tmp_path / "cpu"), "cpu")
    model = _resizing_model(tmp_path / "cuda")
    sim = SimulatedCuda(monkeypatch)
    model.device = torch.device("cuda")  # "on the GPU" (its weights stay where they are)
    pij, probs = _probs(model, "cuda", num_readers=2)

    worker = threading.current_thread().name
    pins = [(thread, n) for what, thread, n in sim.events if what == "pin"]
    assert [n for _, n in pins] == [4, 4]  # one pinned uint8 batch per batch read
    assert all(thread.startswith("slidelens-reader") for thread, _ in pins)
    device_threads = {thread for what, thread, _ in sim.events if what != "pin"}
    assert device_threads == {worker}  # every device operation on one thread, the worker's
    assert sim.uploads == [(True, True)] * 2  # from pinned memory, without blocking
    assert sim.chunks() == [_STEP] * 2
    assert [n for what, _, n in sim.events if what == "upload"] == [4, 4]
    np.testing.assert_array_equal(pij, cpu_pij)
    np.testing.assert_allclose(probs, cpu_probs, rtol=0, atol=1e-6)


@pytest.mark.parametrize("stage", ["upload", "convert", "resize", "normalise", "forward"])
def test_on_cuda_running_out_of_memory_anywhere_in_the_step_halves_the_batch(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, stage: str
) -> None:
    cpu_pij, cpu_probs = _probs(_resizing_model(tmp_path / "cpu"), "cpu")
    model = _resizing_model(tmp_path / "cuda")
    sim = SimulatedCuda(monkeypatch)
    sim.fail_at, sim.cap = stage, 2
    model.device = torch.device("cuda")
    pij, probs = _probs(model, "cuda")

    # the first batch of 4 fails in that stage, then goes on in halves, and so does the next
    assert [n for what, _, n in sim.events if what == "upload"] == [4, 2, 2, 2, 2]
    assert sim.emptied == 1
    chunks = sim.chunks()
    assert chunks[0] == _STEP[: _STEP.index(stage) + 1]  # the step stopped where it failed
    assert chunks[1:] == [_STEP] * 4
    np.testing.assert_array_equal(pij, cpu_pij)  # every patch once, in order
    np.testing.assert_allclose(probs, cpu_probs, rtol=0, atol=1e-6)

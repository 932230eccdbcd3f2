"""The device rules the engine and the explanations share: one mixed-precision policy, one
out-of-memory halving loop (no GPU needed: CUDA is simulated with fakes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import inference.engine.device as device_rules
from inference.engine.device import (
    amp_dtype,
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
from tests.inference.test_engine import TinyModel
from tests.inference.test_explain import ArraySource, DarknessModel, two_tone

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
    forward(torch.randn(3, 3, 32, 32))
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
    assert forward(torch.randn(5, 3, 32, 32)).shape == (5, 2)
    assert calls == [5, 2, 2, 1] and forward.max_chunk == 2
    calls.clear()
    forward(torch.randn(4, 3, 32, 32))
    assert calls == [2, 2]  # the halved size stays
    capped.cap = 0
    with pytest.raises(InferenceError, match="even with a batch of one patch"):
        forward(torch.randn(2, 3, 32, 32))


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

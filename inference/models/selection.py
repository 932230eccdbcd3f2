"""Choosing which form of a folder's model to run: trust first, then speed on this machine.

Contract: :func:`usable_forms` splits a folder's forms into those that may be loaded now
and those skipped with a reason: a program (TorchScript, ``torch.export``) is usable
only when trusted (``trust=True`` records its hash in the
:class:`~inference.models.trust.TrustStore`; a hash the store holds is trusted), and
ONNX only where ONNX Runtime has a provider for the device.  :func:`choose` picks among
several usable forms: the choice recorded for these files on this machine
(:class:`~inference.models.backends.BackendStore`), else it loads each, measures it
with :func:`probe_rate` (a second or so on random patches, one torch thread per lane
as the engine's CPU lanes run) and records the fastest.  torch is imported inside
functions only.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from inference.models.backends import (
    BackendChoice,
    BackendStore,
    fastest,
    machine,
    model_key,
)
from inference.models.forms import FORM_ORDER, ModelForm
from inference.models.trust import TrustStore

if TYPE_CHECKING:
    import torch


class Probeable(Protocol):
    """What :func:`probe_rate` needs of a loaded model."""

    @property
    def module(self) -> Any: ...

    @property
    def device(self) -> Any: ...

    @property
    def card(self) -> Any: ...

    def to_model_input(self, x: torch.Tensor) -> torch.Tensor: ...


def usable_forms(
    forms: Sequence[ModelForm],
    hashes: Mapping[str, str],
    *,
    trust: bool,
    trust_store: TrustStore,
    device: str,
) -> tuple[list[ModelForm], dict[str, str]]:
    """``(usable forms, {kind: why skipped})`` (see the module docstring)."""
    usable: list[ModelForm] = []
    skipped: dict[str, str] = {}
    for form in forms:
        if form.is_program:
            sha = hashes[form.kind]
            if trust:
                trust_store.trust(sha, form.path)
            elif not trust_store.is_trusted(sha):
                skipped[form.kind] = "a program you have not trusted (--trust)"
                continue
        if form.kind == "onnx":
            from inference.models.errors import ModelLoadError
            from inference.models.onnx_runtime import providers_for

            try:
                providers_for(device)
            except ModelLoadError as exc:
                skipped[form.kind] = str(exc)
                continue
        usable.append(form)
    return usable, skipped


def probe_rate(model: Probeable, *, batch: int = 4, seconds: float = 0.4, runs: int = 8) -> float:
    """Patches per second of a model's input conversion and forward pass on random
    patches: one warm-up, then timed passes until ``seconds`` or ``runs``.  On the CPU
    with one torch thread (a lane's share), channels-last like the engine's passes."""
    import torch

    side = int(model.card.patch_size_pixels)
    generator = torch.Generator().manual_seed(0)
    rgb = torch.randint(0, 256, (batch, side, side, 3), dtype=torch.uint8, generator=generator)
    device = torch.device(str(model.device))
    cuda = device.type == "cuda"
    previous = torch.get_num_threads()
    with contextlib.suppress(RuntimeError, TypeError, AttributeError):
        model.module.to(memory_format=torch.channels_last)
    try:
        if not cuda:
            torch.set_num_threads(1)
        with torch.inference_mode():

            def once() -> None:
                x = model.to_model_input(rgb.to(device))
                model.module(x.contiguous(memory_format=torch.channels_last))
                if cuda:
                    torch.cuda.synchronize(device)

            once()
            done, start = 0, time.perf_counter()
            while done < runs and (done == 0 or time.perf_counter() - start < seconds):
                once()
                done += 1
            elapsed = time.perf_counter() - start
    finally:
        torch.set_num_threads(previous)
    return batch * done / max(elapsed, 1e-9)


def choose(
    usable: Sequence[ModelForm],
    hashes: Mapping[str, str],
    folder: Path,
    device: str,
    load: Callable[[ModelForm], Probeable],
    *,
    store: BackendStore | None = None,
    skipped: Mapping[str, str] | None = None,
) -> tuple[ModelForm, Probeable | None, BackendChoice]:
    """The fastest usable form (recorded, else measured now and recorded), the model
    already loaded when measuring loaded it (else ``None``), and the choice."""
    import torch

    store = store or BackendStore()
    gpu = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else None
    info = machine(device, gpu)
    key = model_key({f.kind: hashes[f.kind] for f in usable})
    by_kind: dict[str, ModelForm] = {f.kind: f for f in usable}
    recorded = store.get(key, info)
    if recorded is not None and recorded.backend in by_kind:
        return by_kind[recorded.backend], None, recorded
    rates: dict[str, float] = {}
    loaded: dict[str, Probeable] = {}
    for form in usable:
        model = load(form)
        rates[form.kind] = round(probe_rate(model), 2)
        loaded[form.kind] = model
    best = fastest(rates, FORM_ORDER)
    choice = BackendChoice(
        backend=best,
        patches_per_s=rates,
        measured_by="load",
        machine=info,
        folder=str(Path(folder).resolve()),
        skipped=dict(skipped or {}),
    )
    store.put(key, choice)
    return by_kind[best], loaded[best], choice

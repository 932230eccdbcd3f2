"""``slidelens bench inference``'s backend comparison: the same patches through each form.

Contract: :func:`compare_backends` runs the engine's forward step (input conversion,
forward pass, postprocessing; in lanes on the CPU as the engine runs them) over the
same pre-read batches (two interleaved rounds, the best of each reported) with every
form of the model it can run here: torch eager, the folder's ``.pt2`` and TorchScript
when usable, and ONNX Runtime, from the folder's ``model.onnx`` or, when it has none,
from an ONNX copy exported once into
``<user data dir>/bench/onnx/<sha256>/`` (so the demo classifier is compared too).
It returns the figures for the report (``torch_eager_patches_per_s``,
``onnxruntime_patches_per_s``, ``backend_patches_per_s``, ``fastest_backend``...) and,
when the folder itself offers several forms, records the winner in the
:class:`~inference.models.backends.BackendStore`, so the engine runs it by default.
"""

from __future__ import annotations

import functools
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from inference.engine.prepare import PreparedJob
    from inference.models.loading import LoadedModel

#: Rounds over the backends; each backend's best round is reported.
ROUNDS = 2
#: Report keys of the forms, for people reading the JSON.
RATE_KEYS = {
    "eager": "torch_eager_patches_per_s",
    "onnx": "onnxruntime_patches_per_s",
    "pt2": "torch_export_patches_per_s",
    "torchscript": "torchscript_patches_per_s",
}


def _onnx_copy(eager: LoadedModel) -> tuple[LoadedModel, str]:
    """An ONNX form of an eager model: exported once into the user data folder."""
    from inference.core.paths import user_data_dir
    from inference.models.convert import convert_model
    from inference.models.loading import load_model

    folder = user_data_dir() / "bench" / "onnx" / eager.sha256[:32]
    if not (folder / "model.onnx").is_file():
        convert_model(eager, "onnx", folder, alone=True, force=True)
    return load_model(folder, backend="onnx", device=str(eager.device)), str(folder)


def _models(model: LoadedModel, device: str) -> tuple[dict[str, LoadedModel], dict[str, str]]:
    """Every form to measure, loaded, and notes on where each came from or why not."""
    from inference.models.errors import ModelLoadError
    from inference.models.loading import load_model

    folder = model.card.folder
    models: dict[str, LoadedModel] = {}
    notes: dict[str, str] = {}
    for kind in ("eager", "pt2", "torchscript", "onnx"):
        if kind == model.kind:
            models[kind] = model
        elif kind in model.usable:
            models[kind] = load_model(folder, backend=kind, device=device, trust=False)
        if kind in models:
            notes[kind] = "the model folder's"
    if "onnx" not in models and "eager" in models:
        try:
            models["onnx"], where = _onnx_copy(models["eager"])
            notes["onnx"] = f"exported for this benchmark into {where}"
        except ModelLoadError as exc:
            notes["onnx"] = f"not measured: {exc}"
    return models, notes


def _rate(model: LoadedModel, prepared: PreparedJob, inputs: list[torch.Tensor]) -> float:
    """Patches per second of the engine's forward step with this model, run as the
    engine runs it (side by side in lanes on the CPU)."""
    import torch

    from inference.engine.cores import torch_threads
    from inference.engine.forward import Forward

    forward = Forward(model, prepared.device, prepared.seg_tile_px)
    forward(inputs[0])  # warm-up: first-call allocations, sessions, lazy imports
    lanes, threads = prepared.lanes, prepared.cpu_threads or 1
    count = sum(int(x.shape[0]) for x in inputs)
    if lanes > 1:
        previous = torch.get_num_threads()
        try:
            setup = functools.partial(torch.set_num_threads, threads)
            with ThreadPoolExecutor(lanes, initializer=setup) as pool:
                start = time.perf_counter()
                list(pool.map(forward, inputs))
                return count / (time.perf_counter() - start)
        finally:
            torch.set_num_threads(previous)
    with torch_threads(prepared.cpu_threads):
        start = time.perf_counter()
        for x in inputs:
            forward(x)
        if prepared.device.startswith("cuda"):
            torch.cuda.synchronize()
        return count / (time.perf_counter() - start)


def compare_backends(prepared: PreparedJob) -> dict[str, Any]:
    """The backend figures of the report (see the module docstring)."""
    from inference.models.backends import BackendChoice, BackendStore, fastest, machine, model_key
    from inference.models.forms import FORM_ORDER
    from inference.models.loading import LoadedModel
    from inference.models.onnx_runtime import onnxruntime_version

    model = prepared.model
    if not isinstance(model, LoadedModel):
        return {}
    batches = [
        prepared.order[i : i + prepared.job.batch_size]
        for i in range(0, len(prepared.order), prepared.job.batch_size)
    ]
    inputs = [prepared.make_input(prepared.reader.read_many(b)) for b in batches]
    models, notes = _models(model, prepared.device)
    rates: dict[str, float] = {}
    for _ in range(ROUNDS):  # interleaved, best of each: fair when the machine is busy
        for kind, m in models.items():
            rates[kind] = max(rates.get(kind, 0.0), round(_rate(m, prepared, inputs), 2))
    best = fastest(rates, FORM_ORDER)
    out: dict[str, Any] = {RATE_KEYS[k]: v for k, v in rates.items()}
    out |= {
        "backend": model.kind,
        "backend_patches_per_s": rates,
        "backend_sources": notes,
        "fastest_backend": best,
        "onnxruntime": onnxruntime_version(),
    }
    if "eager" in rates and "onnx" in rates:
        out["onnxruntime_vs_eager"] = round(rates["onnx"] / rates["eager"], 3)
    own = {k: v for k, v in rates.items() if k in model.usable and k in model.hashes}
    if len(own) > 1:
        gpu = None
        if prepared.device.startswith("cuda"):
            import torch

            gpu = torch.cuda.get_device_name()
        choice = BackendChoice(
            backend=fastest(own, FORM_ORDER),
            patches_per_s=own,
            measured_by="bench inference",
            machine=machine(prepared.device, gpu),
            folder=str(Path(model.card.folder).resolve()),
        )
        BackendStore().put(model_key({k: model.hashes[k] for k in own}), choice)
        out["recorded_backend"] = choice.backend
    return out

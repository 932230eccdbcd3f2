"""``slidelens bench inference``: end-to-end patch throughput against its two ceilings.

All figures are measured in one run on the same tissue patches of one slide:

* ``reader_ceiling_patches_per_s``: the engine's reading alone (read and resize to the
  patch size, as a uint8 batch, pinned on CUDA; on as many threads as the engine reads
  on: its lanes on the CPU, its reader threads on CUDA), no model.
* ``model_ceiling_patches_per_s``: the engine's forward steps (upload on CUDA, the
  model's input conversion, forward pass, postprocessing) on batches read beforehand,
  as the engine runs them: side by side in its lanes on the CPU (each with its torch
  threads), one batch at a time on CUDA.
* ``model_one_batch_at_a_time_patches_per_s``: the same forward passes one batch at a
  time with torch on every core (what lanes are measured against).
* ``end_to_end_patches_per_s``: ``engine.run_prepared`` on those patches.
* ``efficiency``: end to end over the smaller ceiling (target >= 0.8).  On the CPU the
  lanes read and compute on the same cores, so reading's share comes out of it.
* ``naive_patches_per_s``: one patch at a time, read then forward, the way the seed
  notebooks did it (torch's default threads, no read-ahead), on a subset.
* ``speedup_vs_naive``: end to end over naive.
* ``torch_eager_patches_per_s`` beside ``onnxruntime_patches_per_s`` (and
  ``torch_export_patches_per_s`` / ``torchscript_patches_per_s`` when the folder has
  those forms): the model ceiling with each backend on the same batches, with
  ``backend`` (what the figures above ran), ``fastest_backend`` and
  ``onnxruntime_vs_eager``; see :mod:`inference.bench.backends` (a folder without
  ``model.onnx`` is exported to ONNX once for this).  When the folder offers several
  forms, the fastest is recorded and the engine runs it by default.

Every phase opens the slide afresh so none profits from another's decoded-tile cache.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from inference.engine.prepare import PreparedJob
    from inference.slides import SlideSource

#: Size of the synthetic slide made when no --slide is given.
_DEFAULT_SYNTH_SIDE = 8192


def add_bench_parser(bench_subparsers: argparse._SubParsersAction) -> None:
    parser = bench_subparsers.add_parser(
        "inference",
        help="patch throughput: end to end vs reader and model ceilings vs naive",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument(
        "--slide", type=Path, help="slide to read (default: a synthetic slide made once)"
    )
    parser.add_argument("--model", help="model name or folder (default: the bundled demo model)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-readers", type=int, default=None)
    parser.add_argument("--cpu-lanes", type=int, default=None, help="batches at once on the CPU")
    parser.add_argument("--max-patches", type=int, default=256, help="tissue patches measured")
    parser.add_argument("--naive-patches", type=int, default=32, help="patches for the naive loop")
    parser.add_argument("--mpp", type=float, default=None, help="for slides without mpp")
    parser.add_argument("--trust", action="store_true", help="allow the model's programs")
    parser.add_argument(
        "--backend",
        choices=("auto", "eager", "pt2", "onnx", "torchscript"),
        default="auto",
        help="the form the end-to-end figures run (default: the fastest recorded)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=bench_command)


def _default_slide() -> Path:
    """A synthetic slide in the user data folder, written on first use."""
    from inference.core.paths import user_data_dir
    from inference.slides.synth.writer import SynthParams, write_synthetic_slide

    path = user_data_dir() / "bench" / f"synthetic-{_DEFAULT_SYNTH_SIDE}.tiff"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        params = SynthParams(width=_DEFAULT_SYNTH_SIDE, height=_DEFAULT_SYNTH_SIDE, seed=0)
        write_synthetic_slide(path, params)
    return path


def _default_model() -> str:
    """The first bundled classification model (the demo classifier)."""
    from inference.models.registry import bundled_model

    entry = bundled_model("classification")
    if entry is not None:
        return str(entry.folder)
    raise SystemExit("slidelens bench inference: no bundled classifier found; pass --model")


def _fresh(prepared: PreparedJob, source: SlideSource) -> PreparedJob:
    """The same plan reading through another handle (a cold decoded-tile cache)."""
    return replace(prepared, source=source, reader=replace(prepared.reader, source=source))


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(
    prepared: PreparedJob, open_source: Any, *, naive_patches: int
) -> dict[str, float | int]:
    """Every figure on ``prepared.order``; ``open_source()`` gives a fresh slide handle."""
    import torch

    from inference.engine.cores import available_cores as cores
    from inference.engine.cores import torch_threads
    from inference.engine.read_ahead import ReadAhead
    from inference.engine.runner import run_prepared

    order = prepared.order
    n = len(order)
    if n == 0:
        raise SystemExit("slidelens bench inference: the slide has no tissue patches to measure")
    bs = prepared.job.batch_size
    batches = [order[i : i + bs] for i in range(0, n, bs)]
    forward = prepared.forward
    device = prepared.device

    # warm-up: first-call allocations, cuDNN autotuning, lazy imports
    warm = prepared.make_input(prepared.reader.read_many(batches[0]))
    forward(warm)
    _sync(device)

    lanes = prepared.lanes
    lane_threads = prepared.cpu_threads or 1

    # reader ceiling (keeps the tensors for the model ceiling)
    inputs: list[torch.Tensor] = []
    with open_source() as source, torch_threads(prepared.cpu_threads):
        plan = _fresh(prepared, source)
        t0 = time.perf_counter()
        with ReadAhead(
            plan.reader,
            batches,
            plan.make_input,
            num_threads=lanes if lanes > 1 else plan.num_readers,
        ) as read_ahead:
            for batch in read_ahead:
                if batch.value is not None:
                    inputs.append(batch.value)
        reader_s = time.perf_counter() - t0

    def forward_one_at_a_time() -> float:
        start = time.perf_counter()
        for x in inputs:
            forward(x)
        _sync(device)
        return time.perf_counter() - start

    def forward_in_lanes() -> float:
        def lane_setup() -> None:
            torch.set_num_threads(lane_threads)

        previous = torch.get_num_threads()
        try:
            with ThreadPoolExecutor(lanes, initializer=lane_setup) as pool:
                start = time.perf_counter()
                list(pool.map(forward, inputs))
                return time.perf_counter() - start
        finally:
            torch.set_num_threads(previous)

    if lanes > 1:
        model_s = forward_in_lanes()
    else:
        with torch_threads(prepared.cpu_threads):
            model_s = forward_one_at_a_time()
    with torch_threads(cores()):
        one_at_a_time_s = forward_one_at_a_time()

    # end to end
    with open_source() as source:
        plan = _fresh(prepared, source)
        t0 = time.perf_counter()
        done = 0
        for result in run_prepared(plan):
            done = result.done
        e2e_s = time.perf_counter() - t0

    # naive: one patch at a time, read then forward
    k = max(1, min(naive_patches, n))
    model = prepared.model
    with open_source() as source:
        reader = replace(prepared.reader, source=source)
        xy = prepared.grid.l0_xy(order[:k])
        t0 = time.perf_counter()
        with torch.no_grad():
            for l0_x, l0_y in xy:
                rgb = reader.read_l0(int(l0_x), int(l0_y))
                x = model.preprocess(rgb[None]).to(device)
                model.postprocess(model.module(x)).cpu()
        naive_s = time.perf_counter() - t0

    e2e = done / e2e_s
    reader_rate = n / reader_s
    model_rate = n / model_s
    naive = k / naive_s
    return {
        "patches": n,
        "naive_patches": k,
        "end_to_end_patches_per_s": round(e2e, 2),
        "reader_ceiling_patches_per_s": round(reader_rate, 2),
        "model_ceiling_patches_per_s": round(model_rate, 2),
        "model_one_batch_at_a_time_patches_per_s": round(n / one_at_a_time_s, 2),
        "efficiency": round(e2e / min(reader_rate, model_rate), 3),
        "naive_patches_per_s": round(naive, 2),
        "speedup_vs_naive": round(e2e / naive, 2),
    }


class _Opened:
    """``with open_source() as source``: a fresh handle closed afterwards."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.source: SlideSource | None = None

    def __enter__(self) -> SlideSource:
        from inference.slides import open_slide

        self.source = open_slide(self.path)
        return self.source

    def __exit__(self, *exc: object) -> None:
        if self.source is not None:
            self.source.close()


def bench_command(args: argparse.Namespace) -> int:
    import torch

    from inference.engine.cores import available_cores as cores
    from inference.engine.job import InferenceJob
    from inference.engine.prepare import prepare

    slide = args.slide or _default_slide()
    model_name = args.model or _default_model()
    job = InferenceJob(
        slide=slide,
        model=model_name,
        device=None if args.device == "auto" else args.device,
        batch_size=args.batch_size,
        num_readers=args.num_readers,
        cpu_lanes=args.cpu_lanes,
        mpp_override=args.mpp,
        trust=args.trust,
        backend=args.backend,
    )
    from inference.bench.backends import compare_backends

    with prepare(job) as full:
        prepared = full.limited(args.max_patches)
        figures = measure(prepared, lambda: _Opened(slide), naive_patches=args.naive_patches)
        figures |= compare_backends(prepared)
        report: dict[str, Any] = {
            "bench": "inference",
            "slide": str(slide),
            "slide_dimensions": list(full.source.info.dimensions),
            "model": full.model.card.name,
            "model_sha256": full.model.sha256,
            "device": full.device,
            "precision": prepared.forward.precision,
            "batch_size": args.batch_size,
            "num_readers": full.num_readers,
            "cpu_lanes": prepared.lanes,
            "torch_threads_engine": prepared.cpu_threads or torch.get_num_threads(),
            "torch_threads_default": torch.get_num_threads(),
            "cores": cores(),
            "l0_patch": full.grid.l0_patch,
            "read_level_downsample": full.reader.lv_downsample,
            "tissue_patches": len(full.order),
            **figures,
            "torch": torch.__version__,
        }
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:32s} {value}")
        rates = report.get("backend_patches_per_s", {})
        if rates:
            side = "   ".join(f"{k} {v:.1f}" for k, v in rates.items())
            print(f"{'patches/s by backend':32s} {side}")
    sys.stdout.flush()
    return 0

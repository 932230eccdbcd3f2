"""``slidelens bench batch``: the Dask batch runner against ``slidelens infer`` one slide
after another, and from 1 to 2 workers.

Every figure is measured in one run on the same synthetic slides (written once into the
user data folder), with the bundled demo tumour classifier unless ``--model`` says otherwise,
no result cache (every phase computes every slide) and a fresh output folder per phase.
Each phase is the command a user would type, run as a child process and timed from
start to exit (imports, model loading, cluster start and shutdown included):

* ``infer_sequential``: ``slidelens infer SLIDE... --no-cache`` (one process, one slide
  after another, the engine's lanes on every core);
* ``batch_<N>_workers``: ``slidelens batch DIR --no-cache --workers N`` for each N of
  ``--workers`` (default 1 and 2; each worker's slide gets the cores shared out).

Per phase: wall seconds, ``slides_per_hour`` and ``patches_per_s`` (computed patches of
all slides over the wall time), and ``compute_s`` / ``compute_patches_per_s``: the same
patches over the time spent on slides only (a batch's summary counts from its first
slide's start to its end; ``infer``'s run JSONs count each slide), which leaves out
start-up (imports, the cluster, loading the model) and shutdown; ``cpu_s`` and
``patches_per_cpu_s``: the CPU time of the phase's whole process tree (workers
included), which other work on a shared machine does not inflate.  With ``--repeats R``
the phases run R times in turn and each keeps its fastest run (the least disturbed by
anything else on the machine).
Ratios: ``batch_vs_infer`` per worker count (slides per hour of the batch over those of
``infer``) and ``scaling_<max>_vs_<min>_workers``.
``same_counts`` says every phase computed the same patches.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: Synthetic slides made when no --slides folder is given.
_DEFAULT_COUNT = 6
_DEFAULT_SIDE = 4096


def add_bench_parser(bench_subparsers: argparse._SubParsersAction) -> None:
    parser = bench_subparsers.add_parser(
        "batch",
        help="batch runner (Dask) vs slidelens infer one slide after another; 1 vs 2 workers",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--count", type=int, default=_DEFAULT_COUNT, help="synthetic slides")
    parser.add_argument("--side", type=int, default=_DEFAULT_SIDE, help="their width and height")
    parser.add_argument("--model", help="model name or folder (default: the demo classifier)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument(
        "--workers", default="1,2", help="worker counts to measure, comma-separated (1,2)"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="run the phases this many times in turn; keep the fastest",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=bench_command)


def bench_slides(count: int, side: int) -> list[Path]:
    """``count`` synthetic slides of ``side`` pixels (0.5 µm/px), written once."""
    from inference.core.paths import user_data_dir
    from inference.slides.synth.writer import SynthParams, write_synthetic_slide

    folder = user_data_dir() / "bench" / f"batch-{side}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(count):
        path = folder / f"batch-{side}-{seed}.tiff"
        if not path.is_file():
            write_synthetic_slide(path, SynthParams(width=side, height=side, seed=seed, mpp=0.5))
        paths.append(path)
    return paths


def _model() -> str:
    """The bundled classifier (the demo tumour classifier)."""
    from inference.models.registry import bundled_model

    entry = bundled_model("classification")
    if entry is None:
        raise SystemExit("slidelens bench batch: no bundled classifier found; pass --model")
    return str(entry.folder)


def slidelens_command() -> list[str]:
    """The ``slidelens`` command installed beside this Python (or on the PATH)."""
    here = Path(sys.executable).parent / "slidelens"
    found = str(here) if here.is_file() else shutil.which("slidelens")
    if found is None:
        raise SystemExit(
            "slidelens bench batch: the slidelens command is not installed "
            "(pip install -e . in this environment)"
        )
    return [found]


def _children_cpu_s() -> float:
    import resource  # POSIX only: this module is imported by `slidelens --help` everywhere

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(argv: list[str]) -> tuple[float, float]:
    """Run ``slidelens ARGV`` to its end; its wall seconds and the CPU seconds of its
    whole process tree (its workers included: they are its children, reaped by it)."""
    command = [*slidelens_command(), *argv]
    cpu = _children_cpu_s()
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    cpu = _children_cpu_s() - cpu
    if done.returncode != 0:
        raise SystemExit(
            f"slidelens bench batch: {' '.join(argv[:1])} failed ({done.returncode}):\n"
            f"{done.stderr[-2000:]}"
        )
    return seconds, cpu


def _computed(folder: Path) -> int:
    """Computed patches over every ``*.run.json`` below ``folder``."""
    total = 0
    for path in folder.rglob("*.run.json"):
        total += int(json.loads(path.read_text("utf-8"))["counts"]["computed"])
    return total


def _compute_seconds(folder: Path) -> float:
    """Seconds spent on slides, start-up and shutdown left out: a batch's summary counts
    from its first task sent to its end; ``infer``'s run JSONs count each slide."""
    from inference.batch.summary import read_summary_json

    summary = read_summary_json(folder)
    if summary is not None:
        return float(summary["run"]["elapsed_s"])
    return sum(
        float(json.loads(p.read_text("utf-8"))["timings"]["total_s"])
        for p in folder.glob("*.run.json")
    )


def _phase(seconds: float, cpu_s: float, slides: int, folder: Path) -> dict[str, Any]:
    patches = _computed(folder)
    compute_s = _compute_seconds(folder)
    return {
        "wall_s": round(seconds, 2),
        "cpu_s": round(cpu_s, 2),
        "patches_per_cpu_s": round(patches / cpu_s, 2) if cpu_s > 0 else None,
        "slides_per_hour": round(slides * 3600 / seconds, 1),
        "patches_per_s": round(patches / seconds, 2),
        "patches": patches,
        "compute_s": round(compute_s, 2),
        "compute_patches_per_s": round(patches / compute_s, 2) if compute_s > 0 else None,
    }


def measure(
    slides: list[Path],
    model: str,
    device: str,
    worker_counts: list[int],
    scratch: Path,
    repeats: int = 1,
) -> dict[str, Any]:
    """Every phase on ``slides`` (see the module docstring); outputs go below ``scratch``."""
    common = ["--model", model, "--device", device, "--no-cache", "-q"]
    listing = scratch / "slides.txt"
    listing.write_text("".join(f"{p}\n" for p in slides), encoding="utf-8")
    commands = {"infer_sequential": ["infer", *map(str, slides), *common]}
    for workers in worker_counts:
        commands[f"batch_{workers}_workers"] = [
            "batch", "--list", str(listing), *common, "--workers", str(workers), "--no-dashboard"
        ]  # fmt: skip
    phases: dict[str, dict[str, Any]] = {}
    for repeat in range(max(1, repeats)):
        for name, argv in commands.items():
            out = scratch / f"{name}-{repeat}"
            seconds, cpu_s = _timed([*argv, "--out", str(out)])
            phase = _phase(seconds, cpu_s, len(slides), out)
            if name not in phases or phase["wall_s"] < phases[name]["wall_s"]:
                phases[name] = phase

    infer_rate = phases["infer_sequential"]["slides_per_hour"]
    report: dict[str, Any] = dict(phases)
    report["batch_vs_infer"] = {
        str(w): round(phases[f"batch_{w}_workers"]["slides_per_hour"] / infer_rate, 3)
        for w in worker_counts
    }
    low, high = min(worker_counts), max(worker_counts)
    if high > low:
        report[f"scaling_{high}_vs_{low}_workers"] = round(
            phases[f"batch_{high}_workers"]["slides_per_hour"]
            / phases[f"batch_{low}_workers"]["slides_per_hour"],
            3,
        )
    report["same_counts"] = len({p["patches"] for p in phases.values()}) == 1
    return report


def bench_command(args: argparse.Namespace) -> int:
    from inference.engine.cores import available_cores

    try:
        worker_counts = sorted({int(w) for w in str(args.workers).split(",") if w.strip()})
    except ValueError:
        raise SystemExit(
            f"slidelens bench batch: --workers takes numbers, not {args.workers!r}"
        ) from None
    if not worker_counts or min(worker_counts) < 1:
        raise SystemExit("slidelens bench batch: --workers needs counts of 1 or more")
    slides = bench_slides(args.count, args.side)
    model = args.model or _model()
    with tempfile.TemporaryDirectory(prefix="slidelens-bench-batch-") as scratch:
        figures = measure(
            slides, model, args.device, worker_counts, Path(scratch), repeats=args.repeats
        )
    report = {
        "bench": "batch",
        "slides": len(slides),
        "slide_side": args.side,
        "model": Path(model).name,
        "device": args.device,
        "cores": available_cores(),
        "cpu_count": os.cpu_count(),
        "repeats": args.repeats,
        **figures,
    }
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:28s} {value}")
    sys.stdout.flush()
    return 0

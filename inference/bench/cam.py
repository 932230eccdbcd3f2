"""``slidelens bench cam``: explanation latency per method, against a plain forward pass.

Measured in one run, on the same tissue of one slide (a synthetic one unless ``--slide``):

* ``forward_patch_s``: the baseline, one patch read, preprocessed and scored (no CAM);
* per method: ``patch_s`` (median over ``--repeats`` runs; one run for slow methods),
  ``patch_vs_forward`` (that over the baseline), ``region_s`` for a region of
  ``--region-patches`` x ``--region-patches`` patches (blended with the default overlap,
  so more patches are computed: ``region_patches``) and ``first_progress_s``, the time
  from the call to its first progress report;
* ``scorecam_first_progress_s``: that time for Score-CAM (the one that needs it most);
* ``library_*``: pytorch-grad-cam's own class on the same patch (min-max scaled, no
  progress), for Grad-CAM and Score-CAM, as a reference for our wrappers' overhead.

Prints one JSON object with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inference.core.geometry import Rect

if TYPE_CHECKING:
    from inference.engine.job import ModelLike
    from inference.engine.tissue import TissueMask
    from inference.slides import SlideSource

#: Side of the synthetic slide made when no --slide is given.
_SYNTH_SIDE = 4096


def add_bench_parser(bench_subparsers: argparse._SubParsersAction) -> None:
    parser = bench_subparsers.add_parser(
        "cam",
        help="CAM latency per method for a patch and a region; Score-CAM first progress",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--model", help="model name or folder (default: the bundled classifier)")
    parser.add_argument("--slide", type=Path, help="slide (default: a synthetic slide made once)")
    parser.add_argument("--mpp", type=float, default=None, help="for slides without mpp")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    parser.add_argument("--methods", default=None, help="comma-separated (default: all available)")
    parser.add_argument("--repeats", type=int, default=5, help="patch runs of fast methods")
    parser.add_argument("--region-patches", type=int, default=4, help="region side in patches")
    parser.add_argument("--no-region", action="store_true", help="measure patches only")
    parser.add_argument(
        "--no-library", action="store_true", help="skip pytorch-grad-cam's own classes"
    )
    parser.add_argument("--trust", action="store_true")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=bench_command)


def default_slide() -> Path:
    """A synthetic slide in the user data folder, written on first use."""
    from inference.core.paths import user_data_dir
    from inference.slides.synth.writer import SynthParams, write_synthetic_slide

    path = user_data_dir() / "bench" / f"synthetic-cam-{_SYNTH_SIDE}.tiff"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_synthetic_slide(path, SynthParams(width=_SYNTH_SIDE, height=_SYNTH_SIDE, seed=7))
    return path


def tissue_window(tissue: TissueMask, l0_patch: int, patches: int, dims: tuple[int, int]) -> Rect:
    """The ``patches``-square window (one-patch stride) with the most tissue."""
    side = l0_patch * patches
    width, height = dims
    best = (-1.0, Rect(0, 0, side, side))
    for l0_y in range(0, max(1, height - side + 1), l0_patch):
        for l0_x in range(0, max(1, width - side + 1), l0_patch):
            rect = Rect(l0_x, l0_y, side, side)
            frac = tissue.fraction_in(rect)
            if frac > best[0]:
                best = (frac, rect)
    return best[1]


def _timed(fn: Any) -> tuple[float, float | None]:
    """Seconds a call takes and seconds to its first progress report."""
    first: list[float] = []
    t0 = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if not first:
            first.append(time.perf_counter() - t0)

    fn(progress)
    return time.perf_counter() - t0, (first[0] if first else None)


def _forward_patch(source: SlideSource, model: ModelLike, rect: Rect, mpp: float | None) -> float:
    """One patch read, preprocessed and scored: the baseline a CAM is compared with."""
    import torch

    from inference.engine.patches import make_patch_grid, make_patch_reader

    grid = make_patch_grid(source.info, model.card, mpp_override=mpp)
    reader = make_patch_reader(source, grid, int(model.card.patch_size_pixels))
    t0 = time.perf_counter()
    rgb = reader.read_l0(int(rect.x), int(rect.y))
    with torch.inference_mode():
        x = model.preprocess(rgb[None])
        model.postprocess(model.module(x)).cpu()
    return time.perf_counter() - t0


def _library(model: ModelLike, name: str, x: Any, layer_name: str) -> float:
    """pytorch-grad-cam's own class (min-max scaled, tqdm disabled) on one input."""
    import os

    from pytorch_grad_cam import GradCAM, ScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from inference.explain.layers import resolve_layer

    os.environ.setdefault("TQDM_DISABLE", "1")
    cls = {"gradcam": GradCAM, "scorecam": ScoreCAM}[name]
    layer = resolve_layer(model.module, layer_name)
    cam = cls(model=model.module, target_layers=[layer])
    try:
        t0 = time.perf_counter()
        cam(x, [ClassifierOutputTarget(0)])
        return time.perf_counter() - t0
    finally:
        cam.activations_and_grads.release()
        for p in model.module.parameters():
            p.grad = None


def measure(
    source: SlideSource,
    model: ModelLike,
    methods: list[str],
    *,
    mpp: float | None,
    repeats: int,
    region_patches: int,
    region: bool,
    library: bool,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every figure of the module docstring, as a dict; ``log`` gets a line per method."""
    import torch

    from inference.core.geometry import patch_size_on_slide
    from inference.engine.patches import slide_mpp
    from inference.engine.tissue import tissue_mask
    from inference.explain.methods import METHODS
    from inference.explain.requests import CamRequest
    from inference.explain.service import explain_patch, explain_region

    info = source.info
    l0_patch = patch_size_on_slide(
        int(model.card.patch_size_pixels), float(model.card.spacing_um_px), slide_mpp(info, mpp)
    )
    tissue = tissue_mask(source)
    window = tissue_window(tissue, l0_patch, region_patches, info.dimensions)
    l0_x, l0_y = window.center

    # warm-up: imports (pytorch-grad-cam), first-call allocations
    explain_patch(source, model, l0_x, l0_y, CamRequest(method="saliency"), mpp=mpp)
    forward_s = statistics.median(
        _forward_patch(source, model, window, mpp) for _ in range(max(5, repeats))
    )
    figures: dict[str, Any] = {}
    for name in methods:
        request = CamRequest(method=name)
        if not METHODS[name].slow:
            explain_patch(source, model, l0_x, l0_y, request, mpp=mpp)  # warm this method
        runs = [
            _timed(
                lambda p, r=request: explain_patch(
                    source, model, l0_x, l0_y, r, mpp=mpp, progress=p
                )
            )
            for _ in range(1 if METHODS[name].slow else max(1, repeats))
        ]
        patch_s = statistics.median(t for t, _ in runs)
        row: dict[str, Any] = {
            "patch_s": round(patch_s, 4),
            "patch_vs_forward": round(patch_s / forward_s, 2),
            "first_progress_s": round(min(f for _, f in runs if f is not None), 4),
        }
        if region:
            holder: dict[str, Any] = {}

            def run_region(p: Any, r: CamRequest = request, h: dict[str, Any] = holder) -> None:
                h["result"] = explain_region(
                    source, model, window, r, mpp=mpp, tissue=tissue, progress=p
                )

            region_s, region_first = _timed(run_region)
            row["region_s"] = round(region_s, 3)
            row["region_patches"] = int(holder["result"].provenance["geometry"]["patches"])
            row["region_first_progress_s"] = (
                None if region_first is None else round(region_first, 4)
            )
        figures[name] = row
        if log is not None:
            log(f"bench cam: {name}: {row}")

    out: dict[str, Any] = {
        "l0_patch": l0_patch,
        "patch_point": [l0_x, l0_y],
        "region": list(window.to_int()),
        "forward_patch_s": round(forward_s, 4),
        "methods": figures,
    }
    if "scorecam" in figures:
        out["scorecam_first_progress_s"] = figures["scorecam"]["first_progress_s"]
    layer = getattr(model, "cam_target_layer", None)
    if library and layer and getattr(model, "kind", "eager") == "eager":
        from inference.engine.patches import make_patch_grid, make_patch_reader

        grid = make_patch_grid(info, model.card, mpp_override=mpp)
        reader = make_patch_reader(source, grid, int(model.card.patch_size_pixels))
        x = model.preprocess(reader.read_l0(int(window.x), int(window.y))[None])
        for name in ("gradcam", "scorecam"):
            if name in figures:
                with torch.enable_grad():
                    lib_s = _library(model, name, x, layer)
                out[f"library_{name}_patch_s"] = round(lib_s, 4)
                out[f"{name}_vs_library"] = round(figures[name]["patch_s"] / lib_s, 2)
    return out


def bench_command(args: argparse.Namespace) -> int:
    import torch

    from inference.bench.pointing import default_model
    from inference.engine.cores import available_cores
    from inference.engine.device import resolve_device
    from inference.explain.methods import method_spec
    from inference.explain.service import available_methods, versions
    from inference.models import load_model, resolve_model
    from inference.slides import open_slide

    device = resolve_device(None if args.device == "auto" else args.device)
    model = load_model(
        resolve_model(args.model or default_model()), trust=args.trust, device=device
    )
    infos = {m.name: m for m in available_methods(model)}
    if args.methods:
        methods = [method_spec(n).name for n in args.methods.split(",") if n.strip()]
    else:
        methods = list(infos)
    unavailable = {n: infos[n].reason for n in methods if not infos[n].available}
    methods = [n for n in methods if infos[n].available]
    slide = args.slide or default_slide()
    source = open_slide(slide)
    try:
        figures = measure(
            source,
            model,
            methods,
            mpp=args.mpp,
            repeats=args.repeats,
            region_patches=args.region_patches,
            region=not args.no_region,
            library=not args.no_library,
            log=lambda line: print(line, file=sys.stderr, flush=True),
        )
    finally:
        source.close()
    report = {
        "bench": "cam",
        "slide": str(slide),
        "model": model.card.name,
        "model_sha256": model.sha256,
        "architecture": getattr(model.card, "architecture", None),
        "layer": getattr(model, "cam_target_layer", None),
        "device": device,
        "cores": available_cores(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": round(os.getloadavg()[0], 2),  # other work on the machine
        "region_patches_side": args.region_patches,
        **figures,
        "unavailable": unavailable,
        "versions": versions(),
    }
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:28s} {value}")
    sys.stdout.flush()
    return 0

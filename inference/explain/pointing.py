"""Energy pointing game: does a CAM put its energy on the tumour?

For a region of a slide with a known tumour mask, the *energy share* of a CAM is the sum
of its raw values over tumour pixels divided by its sum over all pixels, both over the
explained tissue (explained patches, tissue mask of :mod:`inference.engine.tissue`).  A uniform
map's share is the tumour fraction of that same area: the *baseline*.  A CAM that points
at the tumour has ``share > baseline`` (``ratio = share / baseline > 1``).

``slidelens bench pointing --model NAME`` plays it on held-out synthetic slides
(:mod:`inference.slides.synth.writer`, seeds the model was not trained on) for every method,
explaining on each slide the square region of patches whose tissue is most evenly split
between tumour and other tissue.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from inference.core.geometry import Rect

if TYPE_CHECKING:
    from inference.engine.runner import ModelLike
    from inference.engine.tissue import TissueMask
    from inference.explain.service import CamRequest, CamResult
    from inference.slides import SlideSource

#: First seed of held-out synthetic slides (far from the seeds training scripts use).
HELD_OUT_SEED = 90_001


@dataclass(frozen=True)
class PointingCase:
    """One slide with its tumour truth and the level-0 region to explain on it.

    ``truth``: boolean tumour mask of the whole slide at ``truth_l0_per_px`` level-0 px
    per mask px (origin at the slide's corner).  ``tissue``: the slide's tissue mask.
    """

    name: str
    source: SlideSource
    truth: np.ndarray
    truth_l0_per_px: float
    region: Rect
    tissue: TissueMask


def sample_mask(
    mask: np.ndarray,
    mask_l0_per_px: float,
    l0_origin: tuple[float, float],
    l0_per_px: float,
    shape: tuple[int, int],
) -> np.ndarray:
    """A whole-slide boolean mask sampled at the centres of a canvas's pixels (nearest);
    the canvas has ``shape`` (rows, cols) from ``l0_origin`` at ``l0_per_px``.  Outside
    the mask is False."""
    rows, cols = shape
    l0_xs = l0_origin[0] + (np.arange(cols) + 0.5) * l0_per_px
    l0_ys = l0_origin[1] + (np.arange(rows) + 0.5) * l0_per_px
    m_c = np.floor(l0_xs / mask_l0_per_px).astype(np.intp)
    m_r = np.floor(l0_ys / mask_l0_per_px).astype(np.intp)
    ok_c = (m_c >= 0) & (m_c < mask.shape[1])
    ok_r = (m_r >= 0) & (m_r < mask.shape[0])
    picked = mask[np.clip(m_r, 0, mask.shape[0] - 1)][:, np.clip(m_c, 0, mask.shape[1] - 1)]
    return picked.astype(bool) & ok_r[:, None] & ok_c[None, :]


def energy_share(raw: np.ndarray, tumour: np.ndarray, tissue: np.ndarray) -> tuple[float, float]:
    """``(share, baseline)`` over pixels that are explained (finite) and tissue.

    ``share``: CAM energy on tumour / all CAM energy (NaN when the CAM is all zero);
    ``baseline``: the share a uniform map gets, the tumour fraction of those pixels
    (NaN when there are none).
    """
    valid = np.isfinite(raw) & tissue
    if not valid.any():
        return math.nan, math.nan
    energy = np.maximum(raw[valid].astype(np.float64), 0.0)
    inside = tumour[valid]
    total = float(energy.sum())
    share = float(energy[inside].sum()) / total if total > 0 else math.nan
    return share, float(inside.mean())


def score_case(case: PointingCase, result: CamResult) -> dict[str, float]:
    """Energy share, baseline, their ratio and difference for one explained case."""
    shape = result.raw.shape
    tumour = sample_mask(
        case.truth, case.truth_l0_per_px, result.l0_origin, result.l0_per_px, shape
    )
    tissue = sample_mask(
        case.tissue.mask, case.tissue.l0_per_px, result.l0_origin, result.l0_per_px, shape
    )
    share, baseline = energy_share(result.raw, tumour, tissue)
    return {
        "share": share,
        "baseline": baseline,
        "ratio": share / baseline if baseline > 0 else math.nan,
        "gain": share - baseline,
    }


def choose_region(
    tissue: TissueMask,
    truth: np.ndarray,
    truth_l0_per_px: float,
    l0_patch: int,
    patches: int,
    l0_dimensions: tuple[int, int],
) -> Rect | None:
    """The ``patches`` x ``patches`` window (on a one-patch stride) whose tissue is most
    evenly split between tumour and other tissue, mostly tissue; ``None`` if no window
    holds both."""
    side = l0_patch * patches
    width, height = l0_dimensions
    best: tuple[float, Rect] | None = None
    for l0_y in range(0, max(1, height - side + 1), l0_patch):
        for l0_x in range(0, max(1, width - side + 1), l0_patch):
            rect = Rect(l0_x, l0_y, side, side)
            tissue_frac = tissue.fraction_in(rect)
            window = sample_mask(truth, truth_l0_per_px, (l0_x, l0_y), side / 64, (64, 64))
            tumour_frac = float(window.mean())
            other = max(0.0, tissue_frac - tumour_frac)
            score = min(tumour_frac, other)
            if score > 0.05 and (best is None or score > best[0]):
                best = (score, rect)
    return None if best is None else best[1]


def play(
    model: ModelLike,
    cases: Sequence[PointingCase],
    methods: Sequence[str],
    request: CamRequest,
    *,
    on_result: Callable[[str, str, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Every method on every case; per method the per-case figures and their means.

    ``request`` gives everything but the method.  ``on_result(method, case, figures)``
    is called after each explanation.
    """
    from dataclasses import replace

    from inference.explain.service import explain_region

    out: dict[str, Any] = {}
    for method in methods:
        rows: list[dict[str, Any]] = []
        seconds = 0.0
        for case in cases:
            t0 = time.perf_counter()
            result = explain_region(
                case.source, model, case.region, replace(request, method=method), tissue=case.tissue
            )
            seconds += time.perf_counter() - t0
            figures = score_case(case, result)
            figures["patches"] = float(result.provenance["geometry"]["patches"])
            rows.append({"case": case.name, **figures})
            if on_result is not None:
                on_result(method, case.name, figures)
        out[method] = {
            "share": _nanmean(r["share"] for r in rows),
            "baseline": _nanmean(r["baseline"] for r in rows),
            "ratio": _nanmean(r["ratio"] for r in rows),
            "gain": _nanmean(r["gain"] for r in rows),
            "beats_uniform": sum(1 for r in rows if r["share"] > r["baseline"]),
            "cases": rows,
            "seconds": round(seconds, 3),
        }
    return out


def _finite(value: Any) -> Any:
    """NaN and infinities as ``None`` (JSON has no NaN), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _nanmean(values: Iterable[float]) -> float:
    arr = np.array(list(values), np.float64)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else math.nan


# -- synthetic held-out slides ------------------------------------------------------------


def synthetic_slide(folder: Path, seed: int, size: int, mpp: float) -> Path:
    """A held-out synthetic slide (written once into ``folder``, then reused)."""
    from inference.slides.synth.writer import SynthParams, write_synthetic_slide

    path = folder / f"pointing-{size}-{mpp:g}-{seed}.tiff"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        write_synthetic_slide(path, SynthParams(width=size, height=size, seed=seed, mpp=mpp))
    return path


def synthetic_cases(
    model: ModelLike,
    count: int,
    *,
    folder: Path,
    size: int,
    mpp: float,
    patches: int,
    first_seed: int = HELD_OUT_SEED,
    avoid_seeds: Iterable[int] = (),
) -> tuple[list[PointingCase], list[int]]:
    """``count`` cases on synthetic slides of held-out seeds (open slides: close them).

    Seeds start at ``first_seed`` and skip ``avoid_seeds`` (the model's training seeds)
    and slides without a region mixing tumour and other tissue.
    """
    from inference.core.geometry import patch_size_on_slide
    from inference.engine.tissue import tissue_mask
    from inference.evaluation.truth import load_truth
    from inference.slides import open_slide
    from inference.slides.synth.writer import truth_paths

    avoid = set(avoid_seeds)
    l0_patch = patch_size_on_slide(
        int(model.card.patch_size_pixels), float(model.card.spacing_um_px), mpp
    )
    cases: list[PointingCase] = []
    seeds: list[int] = []
    seed = first_seed
    while len(cases) < count and seed < first_seed + 4 * count + 8:
        if seed in avoid:
            seed += 1
            continue
        path = synthetic_slide(folder, seed, size, mpp)
        source = open_slide(path)
        truth = load_truth(truth_paths(path)[0], source.info.dimensions)
        tissue = tissue_mask(source)
        region = choose_region(
            tissue, truth.mask, truth.l0_per_px, l0_patch, patches, source.info.dimensions
        )
        if region is None:
            source.close()
        else:
            cases.append(
                PointingCase(path.name, source, truth.mask, truth.l0_per_px, region, tissue)
            )
            seeds.append(seed)
        seed += 1
    return cases, seeds


def training_seeds(model: ModelLike) -> list[int]:
    """Seeds of the slides the card says the model was trained or validated on
    (``training.seeds``, ``training.*_seeds``, ``training.training_slides[*].seed``), to
    keep them out of the held-out set."""
    training = getattr(model.card, "training", {}) or {}
    seeds: set[int] = set()
    for key, value in dict(training).items():
        if key == "seeds" or key.endswith("_seeds"):
            values = value if isinstance(value, list) else [value]
            seeds.update(int(v) for v in values if isinstance(v, int | float))
        elif key.endswith("_slides") and isinstance(value, list):
            seeds.update(
                int(v["seed"])
                for v in value
                if isinstance(v, dict) and isinstance(v.get("seed"), int | float)
            )
    return sorted(seeds)


# -- command -----------------------------------------------------------------------------------


def add_bench_parser(bench_subparsers: argparse._SubParsersAction) -> None:
    parser = bench_subparsers.add_parser(
        "pointing",
        help="energy pointing game: CAM energy on the tumour vs a uniform map",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument("--model", help="model name or folder (default: the bundled classifier)")
    parser.add_argument("--slides", type=int, default=3, help="held-out synthetic slides")
    parser.add_argument("--size", type=int, default=4096, help="slide side in level-0 px")
    parser.add_argument("--mpp", type=float, default=0.5, help="synthetic slides' um/px")
    parser.add_argument("--seed", type=int, default=HELD_OUT_SEED, help="first held-out seed")
    parser.add_argument(
        "--methods",
        default=None,
        help="comma-separated, or 'all' (default: every available method; on the CPU the "
        "slow ones are left out)",
    )
    parser.add_argument(
        "--class",
        dest="target",
        default=None,
        help="class to explain (default: the class named 'tumour', else the predicted one)",
    )
    parser.add_argument("--region-patches", type=int, default=4, help="region side in patches")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    parser.add_argument("--trust", action="store_true")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=pointing_command)


def default_model() -> str:
    """The bundled classifier (a bundled model whose card says classification)."""
    from inference.models import list_models

    for entry in list_models():
        card = entry.card
        if entry.source == "bundled" and card is not None and card.task == "classification":
            return str(entry.folder)
    raise SystemExit("no bundled classifier found; pass --model")


def tumour_class(model: ModelLike) -> int | None:
    """The index of the class named "tumour" (or "tumor"), any case; ``None`` if none."""
    names = [str(n).lower() for n in model.card.class_names]
    for name in ("tumour", "tumor"):
        if name in names:
            return names.index(name)
    return None


def pick_methods(
    text: str | None, model: ModelLike, device: str
) -> tuple[list[str], dict[str, str]]:
    """Methods to run and those skipped (with why)."""
    from inference.explain.methods import method_spec
    from inference.explain.service import available_methods

    infos = {m.name: m for m in available_methods(model)}
    skipped: dict[str, str] = {}
    if text and text != "all":
        wanted = [method_spec(name).name for name in text.split(",") if name.strip()]
    else:
        wanted = list(infos)
    chosen = []
    for name in wanted:
        info = infos[name]
        if not info.available:
            skipped[name] = info.reason or "unavailable"
        elif info.slow and text is None and not device.startswith("cuda"):
            skipped[name] = "slow on the CPU; name it in --methods (or --methods all) to run it"
        else:
            chosen.append(name)
    return chosen, skipped


def pointing_command(args: argparse.Namespace) -> int:
    from inference.core.paths import user_data_dir
    from inference.engine.runner import resolve_device
    from inference.explain.service import CamRequest, resolve_class, versions
    from inference.models import load_model, resolve_model

    device = resolve_device(None if args.device == "auto" else args.device)
    folder = resolve_model(args.model or default_model())
    model = load_model(folder, trust=args.trust, device=device)
    methods, skipped = pick_methods(args.methods, model, device)
    avoid = training_seeds(model)
    cases, seeds = synthetic_cases(
        model,
        args.slides,
        folder=user_data_dir() / "bench" / "pointing",
        size=args.size,
        mpp=args.mpp,
        patches=args.region_patches,
        first_seed=args.seed,
        avoid_seeds=avoid,
    )
    if not cases:
        print(
            "slidelens bench pointing: no synthetic slide had tumour and other tissue",
            file=sys.stderr,
        )
        return 1
    try:

        def note(method: str, case: str, figures: dict[str, float]) -> None:
            if not args.json:
                print(
                    f"{method:22s} {case:32s} share {figures['share']:.3f} "
                    f"baseline {figures['baseline']:.3f}",
                    file=sys.stderr,
                )

        target: int | str | None = args.target if args.target is not None else tumour_class(model)
        results = play(model, cases, methods, CamRequest(target=target), on_result=note)
    finally:
        for case in cases:
            case.source.close()
    report = {
        "bench": "pointing",
        "model": model.card.name,
        "model_sha256": model.sha256,
        "device": device,
        "slides": [c.name for c in cases],
        "seeds": seeds,
        "avoided_training_seeds": avoid,
        "regions": [list(c.region.to_int()) for c in cases],
        "class": None if target is None else model.card.class_names[resolve_class(model, target)],
        "definition": (
            "share = CAM energy on tumour / CAM energy, over explained tissue pixels; "
            "baseline = tumour fraction of those pixels (a uniform map's share)"
        ),
        "methods": results,
        "skipped": skipped,
        "versions": versions(),
    }
    if args.json:
        print(json.dumps(_finite(report)))
    else:
        for name, figures in results.items():
            print(
                f"{name:22s} share {figures['share']:.3f}  baseline {figures['baseline']:.3f}  "
                f"ratio {figures['ratio']:.2f}  beats uniform on {figures['beats_uniform']}/"
                f"{len(cases)}"
            )
        for name, why in skipped.items():
            print(f"{name:22s} skipped: {why}")
    return 0

"""``slidelens bench pointing``: the energy pointing game on held-out synthetic slides.

``slidelens bench pointing --model NAME`` plays the game of
:mod:`inference.explain.pointing` on held-out synthetic slides
(:mod:`inference.slides.synth.writer`, seeds the model was not trained on) for every
method, explaining on each slide the square region of patches whose tissue is most
evenly split between tumour and other tissue, and prints per method the mean share,
baseline and ratio (or one JSON object).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inference.explain.pointing import PointingCase, choose_region, play

if TYPE_CHECKING:
    from inference.engine.job import ModelLike

#: First seed of held-out synthetic slides (far from the seeds training scripts use).
HELD_OUT_SEED = 90_001

#: The command's ``--help`` description, word for word as it has always been printed.
DESCRIPTION = (
    "For a region of a slide with a known tumour mask, the *energy share* of a CAM is the sum\n"
    "of its raw values over tumour pixels divided by its sum over all pixels, both over the\n"
    "explained tissue (explained patches, tissue mask of :mod:`inference.tissue`).  A uniform\n"
    "map's share is the tumour fraction of that same area: the *baseline*.  A CAM that points\n"
    "at the tumour has ``share > baseline`` (``ratio = share / baseline > 1``)."
)


def _finite(value: Any) -> Any:
    """NaN and infinities as ``None`` (JSON has no NaN), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


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
        description=DESCRIPTION,
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
    """The bundled tumour classifier (:func:`~inference.models.registry.bundled_model`)."""
    from inference.models.registry import bundled_model

    entry = bundled_model("classification")
    if entry is None:
        raise SystemExit("no bundled classifier found; pass --model")
    return str(entry.folder)


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
    from inference.engine.device import resolve_device
    from inference.explain.requests import CamRequest
    from inference.explain.service import resolve_class, versions
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

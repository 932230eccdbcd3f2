"""``slidelens infer SLIDE... --model NAME|PATH --out DIR``: headless whole-slide inference.

Per slide it writes ``<stem>.csv`` (one row per patch), ``<stem>.geojson`` (QuPath),
``<stem>.heatmap.tiff`` (pyramidal probability of the last class), ``<stem>.result.npz``
(the whole result, for ``slidelens evaluate`` / ``export`` and the viewer) and
``<stem>.run.json`` (model hash, parameters, versions, timings, counts), the JSON last.
A slide whose JSON says it is complete is skipped, so an interrupted run resumes where
it stopped (``--force`` recomputes).  A slide that fails is reported and the next one
goes on; the exit code is 1 when any slide failed, 2 when nothing could start.

The progress bar is drawn here, on stderr; the engine only yields batches.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from inference.cli.args import device, parse_region, positive_float, positive_int
from inference.engine.tissue import DEFAULT_TISSUE_THRESHOLD

if TYPE_CHECKING:
    from inference.engine.job import BatchResult, ModelLike
    from inference.engine.prepare import PreparedJob
    from inference.results.exports import OutputPaths
    from inference.results.store import InferenceResult

log = logging.getLogger(__name__)

#: Exit codes.
EXIT_OK, EXIT_SLIDE_FAILED, EXIT_USAGE = 0, 1, 2
#: Written in the run JSON once every output of a slide is in place.
STATUS_COMPLETE = "complete"


# -- argument types ------------------------------------------------------------------------


def _overlap(text: str) -> float:
    from inference.engine.patches import MAX_OVERLAP

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction, not {text!r}") from None
    if not 0.0 <= value <= MAX_OVERLAP:
        raise argparse.ArgumentTypeError(
            f"overlap is a fraction of the patch side between 0 and {MAX_OVERLAP}, not {value}"
        )
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "infer",
        help="run a model on whole slides; write CSV, GeoJSON, heatmap TIFF and run JSON",
        description=(
            "Run a patch model on each SLIDE and write <stem>.csv, <stem>.geojson, "
            "<stem>.heatmap.tiff and <stem>.run.json into --out.  Slides whose results "
            "exist are skipped (resumable) unless --force."
        ),
    )
    parser.add_argument("slides", nargs="+", type=Path, metavar="SLIDE", help="slide files")
    parser.add_argument("--model", required=True, help="bundled model name or model folder")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument(
        "--region",
        type=parse_region,
        help="only this level-0 rectangle X,Y,W,H (default: the whole slide)",
    )
    parser.add_argument("--device", type=device, default="auto", help="cpu, cuda or auto (default)")
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument(
        "--overlap",
        type=_overlap,
        default=None,
        help="fraction of a patch neighbours overlap (default 0; 0.25 for segmentation)",
    )
    parser.add_argument(
        "--mpp", type=positive_float, help="level-0 microns per pixel, for slides without it"
    )
    parser.add_argument(
        "--tissue-threshold",
        type=float,
        default=DEFAULT_TISSUE_THRESHOLD,
        help=f"skip patches with less tissue than this fraction (default "
        f"{DEFAULT_TISSUE_THRESHOLD}; 0 computes every patch)",
    )
    parser.add_argument(
        "--num-readers", type=positive_int, help="patch reader threads (with --cpu-lanes 1)"
    )
    parser.add_argument(
        "--cpu-lanes",
        type=positive_int,
        help="on the CPU, batches computed at once, each on its own thread "
        "(default: one per core; 1: one batch at a time on every core)",
    )
    parser.add_argument(
        "--torch-threads", type=positive_int, help="torch threads of each lane on the CPU"
    )
    parser.add_argument(
        "--trust", action="store_true", help="allow a TorchScript model (it is a program)"
    )
    parser.add_argument("--force", action="store_true", help="recompute slides with results")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=infer_command)


# -- progress ------------------------------------------------------------------------------


class ProgressBar:
    """A one-line progress bar on a terminal; a summary line otherwise."""

    WIDTH = 28

    def __init__(self, label: str, stream: IO[str], *, enabled: bool = True) -> None:
        self.label = label
        self.stream = stream
        self.enabled = enabled
        self.live = enabled and stream.isatty()
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self.done = 0
        self.total = 0

    def update(self, batch: BatchResult) -> None:
        self.done, self.total = batch.done, batch.total
        now = time.perf_counter()
        if self.live and (now - self._last_draw > 0.1 or self.done >= self.total):
            self._last_draw = now
            self.stream.write("\r" + self._line(now))
            self.stream.flush()

    def _line(self, now: float) -> str:
        frac = self.done / self.total if self.total else 1.0
        filled = round(frac * self.WIDTH)
        rate = self.done / max(now - self.start, 1e-9)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        return f"{self.label} [{bar}] {self.done}/{self.total} patches {rate:.1f}/s"

    def close(self, note: str = "") -> None:
        if not self.enabled:
            return
        line = self._line(time.perf_counter()) + (f"  {note}" if note else "")
        self.stream.write(("\r" if self.live else "") + line + "\n")
        self.stream.flush()


# -- the command -----------------------------------------------------------------------------


@dataclass
class SlideRun:
    """What happened to one slide."""

    slide: Path
    status: str  # "done", "cached", "skipped", "failed"
    message: str = ""
    counts: dict[str, int] = field(default_factory=dict)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def is_complete(paths: OutputPaths) -> bool:
    """Every output exists and the run JSON says the run completed."""
    if not all(p.is_file() for p in paths.all()):
        return False
    try:
        doc = json.loads(paths.metadata.read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("status") == STATUS_COMPLETE


def versions() -> dict[str, str]:
    """Versions of what produced the results."""
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("slidelens", "torch", "torchvision", "numpy", "openslide-python", "openslide-bin"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    import torch

    out["torch"] = torch.__version__  # with its build tag, e.g. +cu130
    out["cuda"] = str(torch.version.cuda)
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name()
    try:
        import openslide

        out["openslide_library"] = str(openslide.__library_version__)
    except (ImportError, AttributeError):
        pass
    return out


def _card_doc(model: ModelLike) -> Any:
    raw = getattr(model.card, "raw", None)
    if raw:
        return dict(raw)
    return {
        k: getattr(model.card, k)
        for k in ("name", "class_names", "patch_size_pixels", "spacing_um_px", "task")
    }


def _run_slide(
    slide: Path,
    model: ModelLike,
    args: argparse.Namespace,
    device: str,
    paths: OutputPaths,
) -> SlideRun:
    from inference.engine.job import InferenceJob
    from inference.engine.prepare import prepare
    from inference.results.cache import ResultCache
    from inference.results.exports import (
        write_csv,
        write_geojson,
        write_heatmap_tiff,
        write_json,
        write_result_npz,
    )
    from inference.slides import open_slide

    t_start = time.perf_counter()
    source = open_slide(slide)
    try:
        job = InferenceJob(
            slide=source,
            model=model,
            device=device,
            batch_size=args.batch_size,
            overlap=args.overlap,
            region=args.region,
            only_region=args.region is not None,
            mpp_override=args.mpp,
            tissue_threshold=args.tissue_threshold,
            num_readers=args.num_readers,
            cpu_lanes=args.cpu_lanes,
            torch_threads=args.torch_threads,
            trust=args.trust,
        )
        with prepare(job) as prepared:
            params = prepared.params()
            cache = None if args.no_cache else ResultCache()
            key = ResultCache.key(source.info.source_id, model.sha256, params)
            cached = cache.load(key) if cache is not None and not args.force else None
            t_infer = time.perf_counter()
            result: InferenceResult | None
            if cached is not None:
                result = cached.result
                counts = {k: int(v) for k, v in cached.meta.get("counts", {}).items()}
            else:
                result, counts = _infer(prepared, slide, args.quiet)
                if cache is not None and result is not None:
                    # the viewer restores cached results by these keys when the slide opens
                    cache_meta = {
                        "counts": counts,
                        "slide": str(slide),
                        "source_id": source.info.source_id,
                        "model": Path(str(model.card.name)).name,
                        "model_sha256": model.sha256,
                        "scope": "slide" if args.region is None else "region",
                        "created": datetime.now(UTC).isoformat(timespec="seconds"),
                    }
                    cache.save(key, result, cache_meta)
            t_export = time.perf_counter()
            assert result is not None
            write_csv(paths.csv, result)
            write_geojson(paths.geojson, result, threshold=model.card.threshold)
            write_result_npz(paths.result, result)
            geometry = write_heatmap_tiff(
                paths.heatmap,
                result,
                mpp=prepared.mpp,
                extra={"slide": slide.name, "source_id": source.info.source_id},
            )
            t_end = time.perf_counter()
            doc = _metadata(prepared, args, slide, paths, params, key, counts, geometry)
            doc["from_cache"] = cached is not None
            doc["timings"] = {
                "prepare_s": prepared.timings.get("prepare_s", 0.0),
                "tissue_s": prepared.timings.get("tissue_s", 0.0),
                "inference_s": t_export - t_infer,
                "export_s": t_end - t_export,
                "total_s": t_end - t_start,
                "patches_per_s": (
                    counts.get("computed", 0) / (t_export - t_infer)
                    if cached is None and t_export > t_infer
                    else None
                ),
            }
            write_json(paths.metadata, doc)
    finally:
        source.close()
    return SlideRun(slide, "cached" if cached is not None else "done", counts=counts)


def _infer(
    prepared: PreparedJob, slide: Path, quiet: bool
) -> tuple[InferenceResult | None, dict[str, int]]:
    from inference.engine.runner import run_prepared
    from inference.results.store import new_result

    bar = ProgressBar(slide.name, sys.stderr, enabled=not quiet)
    result: InferenceResult | None = None
    unreadable = 0
    for batch in run_prepared(prepared):
        if result is None:
            result = new_result(batch)
        result.add(batch)
        unreadable += len(batch.unreadable_p_ij)
        bar.update(batch)
    background = len(prepared.background_p_ij)
    bar.close(f"{background} background patches skipped" if background else "")
    counts = {
        "patches": prepared.grid.count,
        "computed": len(prepared.order) - unreadable,
        "background": background,
        "unreadable": unreadable,
    }
    return result, counts


def _metadata(
    prepared: PreparedJob,
    args: argparse.Namespace,
    slide: Path,
    paths: OutputPaths,
    params: dict[str, Any],
    key: str,
    counts: dict[str, int],
    geometry: dict[str, Any],
) -> dict[str, Any]:
    info = prepared.source.info
    model = prepared.model
    region = args.region
    return {
        "status": STATUS_COMPLETE,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "slide": {
            "path": str(slide.resolve()),
            "source_id": info.source_id,
            "vendor": info.vendor,
            "dimensions": list(info.dimensions),
            "mpp": info.mpp,
            "mpp_used": prepared.mpp,
            "mpp_from": "--mpp" if args.mpp is not None else "slide",
        },
        "model": {
            "name": model.card.name,
            "sha256": model.sha256,
            "folder": str(getattr(model.card, "folder", "")),
            "weights": str(getattr(model, "weights_path", "")),
            "card": _card_doc(model),
        },
        "parameters": {
            **params,
            "device": prepared.device,
            "batch_size": args.batch_size,
            "num_readers": prepared.num_readers,
            "cpu_lanes": prepared.lanes,
            "torch_threads": prepared.cpu_threads,
            "region": None if region is None else list(region.to_int()),
        },
        "counts": counts,
        "cache_key": key,
        "outputs": {
            "csv": paths.csv.name,
            "geojson": paths.geojson.name,
            "heatmap": paths.heatmap.name,
        },
        "heatmap": geometry,
        "versions": versions(),
    }


def _load_model(args: argparse.Namespace, device: str) -> ModelLike:
    from inference.models import load_model, resolve_model

    folder = resolve_model(args.model)
    model: ModelLike = load_model(folder, trust=args.trust, device=device)
    return model


def infer_command(args: argparse.Namespace) -> int:
    """The ``infer`` handler: returns the exit code."""
    from inference.engine.device import resolve_device
    from inference.engine.job import InferenceError
    from inference.models import ModelError

    err = sys.stderr
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"slidelens infer: cannot create the output folder {args.out}: {exc}", file=err)
        return EXIT_USAGE
    try:
        device = resolve_device(args.device)
        model = _load_model(args, device)
    except (ModelError, InferenceError, OSError) as exc:
        print(f"slidelens infer: {exc}", file=err)
        return EXIT_USAGE

    from inference.results.exports import OutputPaths

    stems: dict[str, Path] = {}
    runs: list[SlideRun] = []
    for slide in args.slides:
        stem = _stem(slide)
        if stem in stems and stems[stem] != slide:
            msg = f"same output name {stem!r} as {stems[stem]}; run it with another --out"
            print(f"{slide}: failed: {msg}", file=err)
            runs.append(SlideRun(slide, "failed", msg))
            continue
        stems[stem] = slide
        paths = OutputPaths.for_slide(args.out, stem)
        if not args.force and is_complete(paths):
            if not args.quiet:
                print(f"{slide.name}: results exist in {args.out}, skipped", file=err)
            runs.append(SlideRun(slide, "skipped"))
            continue
        try:
            runs.append(_run_slide(slide, model, args, device, paths))
        except KeyboardInterrupt:
            print(f"\n{slide.name}: interrupted; run again to resume", file=err)
            raise
        except Exception as exc:  # report, go on with the next slide
            log.debug("slide %s failed", slide, exc_info=True)
            kind = "" if _is_user_error(exc) else f"unexpected {type(exc).__name__}: "
            print(f"{slide}: failed: {kind}{exc}", file=err)
            runs.append(SlideRun(slide, "failed", str(exc)))

    failed = [r for r in runs if r.status == "failed"]
    if not args.quiet and len(args.slides) > 1:
        summary = ", ".join(
            f"{sum(r.status == s for r in runs)} {s}"
            for s in ("done", "cached", "skipped", "failed")
            if any(r.status == s for r in runs)
        )
        print(f"slidelens infer: {summary}", file=err)
    return EXIT_SLIDE_FAILED if failed else EXIT_OK


def _is_user_error(exc: Exception) -> bool:
    from inference.engine.job import InferenceError
    from inference.models import ModelError
    from inference.slides import SlideError

    return isinstance(exc, SlideError | ModelError | InferenceError | ValueError | OSError)

"""``slidelens bench similar``: how fast "find regions like this one" answers.

On ``--patches`` random float16 embeddings (default 100,000) of the demo classifier's
embedding width (its penultimate layer, read from the bundled model; ``--width``
overrides), it times making the :class:`~inference.slide_level.similarity.SimilarityIndex`
(unit-length float32 rows, once per result) and ``--queries`` searches for the ten
most similar patches from random rows (one matrix-vector product and ``argpartition``),
and, as the baseline measured in the same run, the same searches with a full sort.
Prints the figures (milliseconds; ``--json``: one object).  The viewer runs a search
off the GUI thread; the issue's bound is one second.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import numpy as np


def positive_int(text: str) -> int:
    """A whole number of at least 1 (an argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def add_bench_parser(bench_subparsers: argparse._SubParsersAction) -> None:
    parser = bench_subparsers.add_parser(
        "similar",
        help="latency of similarity search over patch embeddings",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--patches", type=positive_int, default=100_000, help="embeddings")
    parser.add_argument(
        "--width", type=positive_int, default=None, help="embedding width (default: demo's)"
    )
    parser.add_argument("--queries", type=positive_int, default=20, help="searches timed")
    parser.add_argument("--top", type=positive_int, default=10, help="places per search")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=similar_bench_command)


def demo_embedding_width() -> int:
    """The width of the bundled demo classifier's penultimate layer (its embeddings)."""
    from inference.engine.embedding import last_linear
    from inference.models import load_model
    from inference.models.registry import bundled_model

    entry = bundled_model("classification")
    if entry is None:
        raise SystemExit("no bundled classifier found; pass --width")
    from torch import nn

    found = last_linear(load_model(entry.folder).module)
    if found is None or not isinstance(found[1], nn.Linear):
        raise SystemExit(f"{entry.name} has no Linear layer; pass --width")
    return int(found[1].in_features)


def measure(patches: int, width: int, queries: int, top: int, seed: int) -> dict[str, Any]:
    """The figures the command prints (see the module docstring)."""
    from inference.slide_level.similarity import SimilarityIndex

    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(patches, width)).astype(np.float16)
    t0 = time.perf_counter()
    index = SimilarityIndex(embeddings)
    build_s = time.perf_counter() - t0
    rows = rng.integers(0, patches, queries)
    index.query(int(rows[0]), top)  # warm-up: first-touch of the matrix
    search, full = [], []
    for row in rows:
        t0 = time.perf_counter()
        index.query(int(row), top)
        search.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        sims = index.unit @ index.unit[int(row)]
        np.argsort(-sims, kind="stable")[: top + 1]
        full.append(time.perf_counter() - t0)
    median, median_full = statistics.median(search), statistics.median(full)
    return {
        "patches": patches,
        "width": width,
        "queries": queries,
        "top": top,
        "index_build_ms": round(build_s * 1000, 3),
        "search_median_ms": round(median * 1000, 3),
        "search_p95_ms": round(float(np.percentile(search, 95)) * 1000, 3),
        "search_max_ms": round(max(search) * 1000, 3),
        "full_sort_median_ms": round(median_full * 1000, 3),
        "speedup_vs_full_sort": round(median_full / median, 2) if median > 0 else None,
        "first_answer_ms": round((build_s + median) * 1000, 3),
    }


def similar_bench_command(args: argparse.Namespace) -> int:
    width = args.width or demo_embedding_width()
    figures = measure(args.patches, width, args.queries, args.top, args.seed)
    if args.json:
        print(json.dumps(figures))
        return 0
    print(
        f"similarity search over {figures['patches']:,} embeddings of width {width}: "
        f"median {figures['search_median_ms']:.2f} ms, p95 {figures['search_p95_ms']:.2f} ms, "
        f"max {figures['search_max_ms']:.2f} ms per search (top {args.top}); index made in "
        f"{figures['index_build_ms']:.1f} ms; full sort instead: "
        f"{figures['full_sort_median_ms']:.2f} ms"
    )
    return 0

"""``slidelens similar SLIDE --results DIR --at X,Y [--top 10] [--json]``: regions like this one.

Reads the ``<stem>.result.npz`` that ``slidelens infer --out DIR`` wrote for SLIDE (with
patch embeddings: a slide-level head's run, or any run that kept them), finds the patch
under the level-0 point ``--at`` and prints the ``--top`` patches whose embeddings are
most like it (cosine similarity; :mod:`inference.slide_level.search`): rank, level-0
rectangle and centre, similarity.  Nothing is computed again: the embeddings are read
from the file.  ``--json`` prints one object (``query``, ``places``, ``search_ms``).
Exit codes (:mod:`inference.cli.exit_codes`): 1 when the result cannot be read, 2 when
it holds no embeddings or the point has no patch with one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from inference.cli.args import positive_int
from inference.cli.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from inference.cli.explain import parse_point


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "similar",
        help="find the places most like the patch at a point (from stored embeddings)",
        description=(
            "Print the patches of SLIDE whose embeddings are most like the one under --at, "
            "from the result 'slidelens infer --out DIR' wrote (with embeddings)."
        ),
    )
    parser.add_argument("slide", type=Path, metavar="SLIDE", help="the slide file")
    parser.add_argument(
        "--results", required=True, type=Path, metavar="DIR", help="slidelens infer --out folder"
    )
    parser.add_argument(
        "--at", required=True, type=parse_point, metavar="X,Y", help="level-0 point: its patch"
    )
    parser.add_argument("--top", type=positive_int, default=10, help="how many places (10)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=similar_command)


def similar_command(args: argparse.Namespace) -> int:
    """The ``similar`` handler: returns the exit code."""
    from inference.results.exports import find_result, read_result_npz
    from inference.slide_level.search import PatchSearch, SearchError

    err = sys.stderr
    try:
        path = find_result(args.results, args.slide)
        result = read_result_npz(path)
    except (FileNotFoundError, ValueError) as exc:
        print(f"slidelens similar: {exc}", file=err)
        return EXIT_FAILED
    try:
        search = PatchSearch(result)
        found = search.at(args.at[0], args.at[1], args.top)
    except SearchError as exc:
        print(f"slidelens similar: {path.name}: {exc}", file=err)
        return EXIT_USAGE
    if args.json:
        doc = {"slide": str(args.slide), "result": str(path), **found.to_dict()}
        print(json.dumps(doc))
        return EXIT_OK
    q = found.query
    print(
        f"{args.slide.name}: the {len(found.places)} places most like the patch at "
        f"({q.l0_rect[0]:,.0f}, {q.l0_rect[1]:,.0f}) (cosine similarity of embeddings, "
        f"{found.seconds * 1000:.2f} ms)"
    )
    for place in found.places:
        x, y, w, h = place.l0_rect
        cx, cy = place.l0_centre
        print(
            f"  {place.rank:>3}  x {x:>9,.0f}  y {y:>9,.0f}  ({w:,.0f} x {h:,.0f} px)  "
            f"centre ({cx:,.0f}, {cy:,.0f})  similarity {place.similarity:.4f}"
        )
    return EXIT_OK

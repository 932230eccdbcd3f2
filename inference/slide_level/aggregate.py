"""Aggregators: a slide-level answer from a finished result's stored arrays.

Contract: an :class:`Aggregator` is called with a classification result
(:class:`~inference.results.store.ResultGrid`) and returns a
:class:`~inference.slide_level.answer.SlideAnswer`.  It reads what the result stores
(patch probabilities; patch embeddings for heads over embeddings) and never runs the
patch model.  Rules are :mod:`inference.slide_level.rules`; learned heads
(:mod:`inference.slide_level.heads`) run on the CPU under ``torch.inference_mode``:

* ABMIL and CLAM read the embeddings ``(n, D)`` of every patch that has one; their
  attention ``(K, n)`` sums to one over those patches per branch and is the answer's
  map (per class for CLAM-MB); the gallery ranks patches by the attention of the
  predicted class's branch (the only branch otherwise);
* conv-pool reads the grid of patch probabilities (or embeddings), zero where no patch
  was computed; its map is the class activation of every computed patch.

The slide probabilities of a head are the softmax of its logits; the label is the most
probable class.  :func:`card_aggregator` makes the aggregator a patch model's card
declares, :func:`head_aggregator` the one of a slide-level head's folder; both raise a
:class:`~inference.models.card.ModelError` naming the file when it cannot be made.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from inference.models.card import ModelCard, ModelError
from inference.models.trust import TrustStore
from inference.slide_level.answer import SlideAnswer
from inference.slide_level.head_card import SlideHeadCard
from inference.slide_level.head_loading import LoadedHead, load_head
from inference.slide_level.rules import RuleError, apply_rule
from inference.slide_level.spec import AggregationError, AggregationSpec, parse_aggregation

if TYPE_CHECKING:
    from inference.results.store import InferenceResult


class AggregationFailed(ModelError):
    """A result cannot be aggregated (no embeddings, widths that do not fit...)."""


@dataclass
class Aggregator:
    """A checked aggregation and, for a learned head, the loaded head.

    ``embedding_layer``: the layer the head's embeddings must come from (``None``: the
    patch model's default); ``source``: where it was declared (a card or head folder).
    """

    spec: AggregationSpec
    head: LoadedHead | None = None
    embedding_layer: str | None = None
    source: str = ""

    @property
    def needs_embeddings(self) -> bool:
        return self.spec.needs_embeddings

    @property
    def name(self) -> str:
        return self.spec.name or self.spec.type

    def record(self) -> dict[str, Any]:
        """What made the answer: the spec's parameters and, for a head, its file."""
        out = self.spec.to_dict()
        if self.head is not None:
            out["weights"] = self.head.path.name
            out["weights_sha256"] = self.head.sha256
            out["form"] = self.head.kind
        if self.source:
            out["declared_in"] = self.source
        return out

    def __call__(self, result: InferenceResult) -> SlideAnswer:
        if result.task != "classification":
            raise AggregationFailed("slide-level answers are made from classification results")
        if self.spec.is_rule:
            _rects, probs = result.patch_table()  # row by row, as _p_ij_of
            p_ij = _p_ij_of(result)
            try:
                answer = apply_rule(probs, p_ij, result.class_names, self.spec)
            except RuleError as exc:
                raise AggregationFailed(str(exc)) from exc
            return SlideAnswer(
                label=answer.label,
                class_names=answer.class_names,
                probabilities=answer.probabilities,
                aggregation={**answer.aggregation, **self.record()},
                p_ij=answer.p_ij,
                maps=answer.maps,
                map_names=answer.map_names,
                map_kind=answer.map_kind,
                ranking=answer.ranking,
            )
        assert self.head is not None
        names = self.spec.class_names or tuple(result.class_names)
        if self.spec.type == "conv_pool":
            logits, maps, p_ij = self._conv_pool(result)
        else:
            logits, maps, p_ij = self._attention(result)
        if logits.shape[-1] != len(names):
            raise AggregationFailed(
                f"{self.head.path.name}: the head gives {logits.shape[-1]} outputs for "
                f"{len(names)} classes ({', '.join(names)})"
            )
        probabilities = _softmax(logits.reshape(-1))
        winner = int(np.argmax(probabilities))
        if self.spec.type == "conv_pool":
            map_names, kind = names, "class activation"
            ranking = maps[winner]
        elif len(maps) == len(names) and len(names) > 1:  # CLAM-MB: a branch per class
            map_names, kind = names, "attention"
            ranking = maps[winner]
        else:
            map_names = (
                ("attention",)
                if len(maps) == 1
                else tuple(f"attention {k + 1}" for k in range(len(maps)))
            )
            kind = "attention"
            ranking = maps.mean(axis=0)
        return SlideAnswer(
            label=names[winner],
            class_names=tuple(names),
            probabilities=probabilities.astype(np.float64),
            aggregation=self.record(),
            p_ij=p_ij,
            maps=maps.astype(np.float32),
            map_names=tuple(map_names),
            map_kind=kind,
            ranking=np.asarray(ranking, np.float32),
        )

    # -- heads ------------------------------------------------------------------------
    def _attention(self, result: InferenceResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import torch

        assert self.head is not None
        embeddings = result.embeddings
        if embeddings is None or len(embeddings) == 0:
            raise AggregationFailed(
                f"{self.name} reads patch embeddings, and this result has none; run the "
                "model with embeddings (the slide-level run asks for them)"
            )
        h = torch.from_numpy(embeddings.matrix().astype(np.float32))
        with torch.inference_mode():
            try:
                out = self.head.module(h)
            except RuntimeError as exc:
                raise AggregationFailed(
                    f"{self.head.path.name}: the head does not take embeddings of width "
                    f"{h.shape[1]} ({exc})"
                ) from exc
        logits, attention = _pair(out, self.head.path)
        return logits, _as_branches(attention, len(h), self.head.path), embeddings.p_ij()

    def _conv_pool(self, result: InferenceResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import torch

        assert self.head is not None
        computed = result.computed
        rows, cols = computed.shape
        if self.spec.input == "embeddings":
            embeddings = result.embeddings
            if embeddings is None or len(embeddings) == 0:
                raise AggregationFailed(f"{self.name} reads patch embeddings; the result has none")
            p_ij = embeddings.p_ij()
            grid = np.zeros((embeddings.width, rows, cols), np.float32)
            grid[:, p_ij[:, 1], p_ij[:, 0]] = embeddings.matrix().astype(np.float32).T
            mask = np.zeros((rows, cols), np.float32)
            mask[p_ij[:, 1], p_ij[:, 0]] = 1.0
        else:
            grid = np.nan_to_num(result.patch_probs, nan=0.0).astype(np.float32)
            mask = computed.astype(np.float32)
            p_ij = _p_ij_of(result)
        x = torch.from_numpy(grid)[None]
        m = torch.from_numpy(mask)[None, None]
        with torch.inference_mode():
            try:
                out = self.head.module(x, m)
            except RuntimeError as exc:
                raise AggregationFailed(
                    f"{self.head.path.name}: the head does not take {grid.shape[0]} input "
                    f"channels ({exc})"
                ) from exc
        logits, cam = _pair(out, self.head.path)
        return logits, _as_branches(cam, len(p_ij), self.head.path), p_ij


def _p_ij_of(result: InferenceResult) -> np.ndarray:
    """``(n, 2)`` (col, row) of the computed patches, row by row (``patch_table``'s order)."""
    rows, cols = np.nonzero(result.computed)
    return np.stack([cols, rows], axis=1).astype(np.int32)


def _pair(out: Any, path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(out, tuple | list) or len(out) < 2:
        raise AggregationFailed(f"{path.name}: a head must return (logits, attention)")
    logits = out[0].detach().float().cpu().numpy()
    maps = out[1].detach().float().cpu().numpy()
    return logits, maps


def _as_branches(maps: np.ndarray, n: int, path: Path) -> np.ndarray:
    """Per-patch maps as ``(K, n)``, whichever way round a head returned them."""
    a = np.asarray(maps, np.float32)
    a = a.reshape(1, -1) if a.ndim == 1 else a.reshape(-1, a.shape[-1]) if a.ndim > 2 else a
    if a.shape[-1] == n:
        return a
    if a.shape[0] == n:
        return a.T.copy()
    raise AggregationFailed(f"{path.name}: the head's map has shape {maps.shape} for {n} patches")


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64) - np.max(logits)
    e = np.exp(z)
    return np.asarray(e / e.sum())


def card_aggregator(
    card: ModelCard, *, trust: bool = False, trust_store: TrustStore | None = None
) -> Aggregator | None:
    """The aggregator ``card`` declares in ``slidelens.aggregation`` (``None``: none)."""
    data = card.aggregation
    if not data:
        return None
    try:
        spec = parse_aggregation(
            dict(data),
            f"{card.config_path}: field 'slidelens.aggregation'",
            folder=card.folder,
            name=f"{card.name} {data.get('type')}",
        )
    except AggregationError as exc:
        raise AggregationFailed(str(exc)) from exc
    head = None
    if not spec.is_rule:
        assert spec.weights is not None
        head = load_head(
            spec.type, card.folder / spec.weights, trust=trust, trust_store=trust_store
        )
    return Aggregator(
        spec, head, embedding_layer=card.embedding_layer, source=str(card.config_path)
    )


def head_aggregator(
    head_card: SlideHeadCard, *, trust: bool = False, trust_store: TrustStore | None = None
) -> Aggregator:
    """The aggregator of a slide-level head's folder (its weights loaded)."""
    spec = head_card.spec
    assert spec.weights is not None
    head = load_head(
        spec.type, head_card.folder / spec.weights, trust=trust, trust_store=trust_store
    )
    return Aggregator(
        spec,
        head,
        embedding_layer=head_card.embedding_layer,
        source=str(head_card.config_path),
    )

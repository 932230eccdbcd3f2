"""A slide-level head's folder: a WSInfer-MIL style ``config.json`` and the head's weights.

The config is WSInfer-MIL's model config (``spec_version``, ``type``: ``abmil`` or
``clam``, ``num_classes``, ``class_names``, ``feature_extractor``, ``patch_size_um``)
where it fits, with SlideLens's additions: ``type`` may also be ``conv_pool``;
``feature_extractor`` names a SlideLens patch model (a bundled or user model's name, or
a folder relative to the head's) whose embeddings the head reads; and an optional
``slidelens`` object: ``aggregation`` (the keys of :mod:`inference.slide_level.spec`
except ``type`` and ``weights``), ``embedding_layer``, ``description``, ``licence``,
``intended_use``, ``domain``, ``metrics``, ``training``.  ``patch_size_um`` must be the
feature extractor's patch side in micrometres (``patch_size_pixels * spacing_um_px``).

Weights, in order of preference: ``model.safetensors``, a state dict under one of the
other state-dict names (read as tensors only), or ``torchscript_model.pt`` (WSInfer-MIL's
form: a program, loaded only when trusted).  :func:`load_head_card` raises
:class:`SlideHeadError` naming the file and every problem.  No torch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from inference.models.card import CONFIG_NAME, TORCHSCRIPT_NAME, ModelError
from inference.models.domain import ModelDomain
from inference.models.forms import STATE_DICT_NAMES
from inference.slide_level.spec import (
    HEADS,
    AggregationSpec,
    aggregation_problems,
    parse_aggregation,
)

#: The ``type`` values a head folder may name (WSInfer-MIL's ``clam`` covers SB and MB).
HEAD_TYPES = HEADS
_SLIDELENS_KEYS = frozenset(
    {
        "aggregation",
        "embedding_layer",
        "description",
        "licence",
        "intended_use",
        "domain",
        "metrics",
        "training",
    }
)


class SlideHeadError(ModelError):
    """A slide-level head's folder is not usable; the message names the file and why."""


@dataclass(frozen=True)
class SlideHeadCard:
    """A checked slide-level head config (see the module docstring)."""

    folder: Path
    type: str
    class_names: tuple[str, ...]
    feature_extractor: str
    patch_size_um: float
    spec: AggregationSpec
    embedding_layer: str | None = None
    description: str = ""
    licence: str = ""
    intended_use: str = ""
    metrics: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    raw: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def name(self) -> str:
        return self.folder.resolve().name

    @property
    def config_path(self) -> Path:
        return self.folder / CONFIG_NAME

    @property
    def domain(self) -> ModelDomain:
        sl = self.raw.get("slidelens", {})
        data = sl.get("domain", {}) if isinstance(sl, Mapping) else {}
        return ModelDomain.from_data(data if isinstance(data, Mapping) else {})

    @property
    def training(self) -> Mapping[str, Any]:
        sl = self.raw.get("slidelens", {})
        data = sl.get("training", {}) if isinstance(sl, Mapping) else {}
        return data if isinstance(data, Mapping) else {}

    def feature_extractor_folder(self) -> Path:
        """The patch model's folder: a folder relative to the head's, else a model name."""
        relative = (self.folder / self.feature_extractor).resolve()
        if relative.is_dir():
            return relative
        from inference.models.registry import resolve_model

        return resolve_model(self.feature_extractor)


def head_weights(folder: Path) -> Path:
    """The head's weights file (see the module docstring for the order).  Raises
    :class:`SlideHeadError` when the folder holds none."""
    for name in (*STATE_DICT_NAMES, TORCHSCRIPT_NAME):
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    raise SlideHeadError(
        f"{folder}: no weights found; a slide-level head needs one of "
        f"{', '.join((*STATE_DICT_NAMES, TORCHSCRIPT_NAME))} beside config.json"
    )


def load_head_card(folder: Path) -> SlideHeadCard:
    """Read and check ``folder/config.json`` (see the module docstring)."""
    folder = Path(folder)
    path = folder / CONFIG_NAME
    try:
        data = json.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise SlideHeadError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise SlideHeadError(f"{path}: not valid JSON ({exc})") from None
    problems = head_config_problems(data)
    if problems:
        raise SlideHeadError(f"{path}: " + "; ".join(problems))
    sl: Mapping[str, Any] = data.get("slidelens", {})
    kind = str(data["type"])
    weights = head_weights(folder)
    spec = parse_aggregation(
        {**dict(sl.get("aggregation", {})), "type": kind, "class_names": data["class_names"]},
        f"{path}: field 'slidelens.aggregation'",
        folder=folder,
        name=folder.resolve().name,
        weights=weights.name,
    )
    return SlideHeadCard(
        folder=folder,
        type=spec.type,
        class_names=tuple(str(c) for c in data["class_names"]),
        feature_extractor=str(data["feature_extractor"]),
        patch_size_um=float(data["patch_size_um"]),
        spec=spec,
        embedding_layer=sl.get("embedding_layer"),
        description=str(sl.get("description", "")),
        licence=str(sl.get("licence", "")),
        intended_use=str(sl.get("intended_use", "")),
        metrics=MappingProxyType({k: float(v) for k, v in sl.get("metrics", {}).items()}),
        raw=MappingProxyType(data),
    )


def head_config_problems(data: Any) -> list[str]:
    """Every problem of a head config as ``field 'x': problem`` (empty when valid)."""
    if not isinstance(data, dict):
        return ["must be a JSON object"]
    problems: list[str] = []
    for key in ("spec_version", "type", "num_classes", "class_names", "feature_extractor"):
        if key not in data:
            problems.append(f"field '{key}': is required but missing")
    if "patch_size_um" not in data:
        problems.append("field 'patch_size_um': is required but missing")
    elif not isinstance(data["patch_size_um"], int | float) or data["patch_size_um"] <= 0:
        problems.append("field 'patch_size_um': must be a positive number of micrometres")
    kind = data.get("type")
    if kind is not None and kind not in HEAD_TYPES and kind not in ("clam_sb", "clam_mb"):
        problems.append(f"field 'type': must be one of {', '.join(HEAD_TYPES)} (got {kind!r})")
    names = data.get("class_names")
    if names is not None and (
        not isinstance(names, list)
        or not names
        or not all(isinstance(n, str) and n for n in names)
        or len(set(names)) != len(names)
    ):
        problems.append("field 'class_names': must be a list of unique, non-empty names")
    elif isinstance(names, list) and data.get("num_classes") != len(names):
        problems.append(
            f"field 'class_names': has {len(names)} names but num_classes is "
            f"{data.get('num_classes')!r}; give one per class"
        )
    extractor = data.get("feature_extractor")
    if extractor is not None and (not isinstance(extractor, str) or not extractor):
        problems.append("field 'feature_extractor': must name a patch model")
    sl = data.get("slidelens", {})
    if not isinstance(sl, dict):
        problems.append("field 'slidelens': must be an object")
        return problems
    unknown = sorted(set(sl) - _SLIDELENS_KEYS)
    if unknown:
        problems.append(f"field 'slidelens': unknown fields {', '.join(unknown)}")
    aggregation = sl.get("aggregation", {})
    if isinstance(aggregation, dict) and ("type" in aggregation or "weights" in aggregation):
        problems.append(
            "field 'slidelens.aggregation': 'type' and 'weights' come from the config's "
            "'type' and the folder's weights file"
        )
    elif isinstance(aggregation, dict) and kind in (*HEAD_TYPES, "clam_sb", "clam_mb"):
        problems += [
            f"field 'slidelens.aggregation': {p}"
            for p in aggregation_problems({**aggregation, "type": kind}, weights_given=True)
        ]
    elif not isinstance(aggregation, dict):
        problems.append("field 'slidelens.aggregation': must be an object")
    metrics = sl.get("metrics", {})
    if not isinstance(metrics, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in metrics.values()
    ):
        problems.append("field 'slidelens.metrics': must be an object of name -> number")
    return problems

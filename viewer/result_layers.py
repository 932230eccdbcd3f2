"""The layers a model result is shown as, and what each carries besides its values: the
model's domain warning and the clip of a segmentation map (to the slide, and to the
tissue).

:func:`result_layers` makes them: a result of one or two classes is one heatmap (its
last class's probability); a result of :data:`MULTI_CLASS` or more classes is a class
map (the most likely class in class colours, shown), its confidence, and one
probability layer per class (both hidden until asked for), independent layers over the
one result, each with its own settings.  Each says which it is in its provenance
(``"view"``: ``"class map"``, ``"confidence"``, ``"probability:<class>"``).

:func:`domain_record` is made on the worker thread, where the model's card and the
slide are at hand, and goes into the layer's provenance (``"domain"``), so it is saved
with the result and reaches every figure's sidecar; :func:`restored_domain` checks a
cached result's model card again when the result comes back.  :func:`dress_layer` gives
a layer its warning and clip on the GUI thread.  Qt-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inference.models.domain import check_domain, warning_of
from viewer.layers.clipping import LayerClip
from viewer.layers.heatmap import ARGMAX, TOP_PROBABILITY, GridResult, HeatmapLayer

if TYPE_CHECKING:
    from inference.engine.tissue import TissueMask
    from inference.models.card import ModelCard


def domain_record(card: ModelCard, properties: Mapping[str, str]) -> dict[str, Any]:
    """The provenance record of ``card``'s model against a slide with ``properties``
    (see :meth:`inference.models.domain.DomainCheck.to_dict`)."""
    return check_domain(card.name, card.domain, properties).to_dict()


def restored_domain(
    meta: Mapping[str, Any], properties: Mapping[str, str]
) -> dict[str, Any] | None:
    """The domain record of a cached result, from its model's card as it is now (a card
    may have gained a domain since): the card in the result's ``model_folder``, else (a
    result ``slidelens infer`` cached names only its model) the model of that name; the
    record saved with the result when the card is gone or unreadable; ``None`` when
    there is neither."""
    from inference.models.card import ModelError

    try:
        return domain_record(result_model_card(meta), properties)
    except (ModelError, OSError):
        pass
    saved = meta.get("domain")
    return dict(saved) if isinstance(saved, Mapping) else None


#: Results with at least this many classes are shown as a class map and its companions.
MULTI_CLASS = 3
#: The opacity of a new result layer.
RESULT_OPACITY = 0.5


def result_layers(
    name: str,
    result: GridResult,
    provenance: Mapping[str, Any],
    clip: LayerClip | None = None,
) -> list[HeatmapLayer]:
    """The layers of ``result`` (see the module docstring), the primary one first (the
    class map, or the only layer), each dressed (:func:`dress_layer`) and with its own
    copy of ``provenance``; ``name`` is the result's (the model and where it ran)."""
    if len(result.class_names) < MULTI_CLASS or result.task == "explanation":
        layers = [HeatmapLayer(name, result, provenance=provenance, opacity=RESULT_OPACITY)]
    else:
        layers = [
            HeatmapLayer(
                f"{name}: class map",
                result,
                class_index=ARGMAX,
                opacity=RESULT_OPACITY,
                provenance={**provenance, "view": "class map"},
            ),
            HeatmapLayer(
                f"{name}: confidence",
                result,
                class_index=TOP_PROBABILITY,
                colormap="magma",
                opacity=RESULT_OPACITY,
                provenance={**provenance, "view": "confidence"},
            ),
        ]
        for index, class_name in enumerate(result.class_names):
            layers.append(
                HeatmapLayer(
                    f"{name}: {class_name}",
                    result,
                    class_index=index,
                    opacity=RESULT_OPACITY,
                    provenance={**provenance, "view": f"probability:{class_name}"},
                )
            )
        for layer in layers[1:]:
            layer.visible = False
    for layer in layers:
        dress_layer(layer, clip)
    return layers


def result_model_card(provenance: Mapping[str, Any]) -> ModelCard:
    """The card of the model a result's provenance names: the card in its
    ``model_folder``, else (a result ``slidelens infer`` cached names only its model) the
    bundled or user model of that name, as it is now.  Raises
    :class:`~inference.models.card.ModelError` saying what is wrong."""
    from inference.models.card import ModelError, load_card
    from inference.models.registry import resolve_model

    folder = provenance.get("model_folder")
    if isinstance(folder, str) and folder:
        return load_card(Path(folder))
    name = provenance.get("model")
    if isinstance(name, str) and name:
        return load_card(resolve_model(name))
    raise ModelError("the result does not say which model made it")


def layer_clip(
    l0_slide_size: tuple[int, int] | None, tissue: TissueMask | None
) -> LayerClip | None:
    """The clip of a segmentation layer on a slide of ``l0_slide_size`` with ``tissue``
    (``None`` when the slide's size is unknown)."""
    if l0_slide_size is None:
        return None
    if tissue is None:
        return LayerClip(l0_slide_size)
    return LayerClip(l0_slide_size, tissue.mask, tissue.l0_per_px)


def dress_layer(layer: HeatmapLayer, clip: LayerClip | None) -> None:
    """Give a model result's layer the warning its provenance records and, for a
    segmentation map, its clip."""
    layer.warning = warning_of(layer.provenance)
    if layer.clips and clip is not None:
        layer.set_clip(clip)

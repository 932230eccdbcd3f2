"""The forms a model folder offers: eager weights, TorchScript, a ``torch.export`` program, ONNX.

Contract: :func:`find_forms` lists, from file names alone (nothing is read), every form
of the card's model the folder holds, in the order of preference used when nothing was
measured: ``eager`` (a state dict for the card's architecture, or a ``backbone+head``
pair), ``pt2`` (``model.pt2``), ``onnx`` (``model.onnx``), ``torchscript``
(``torchscript_model.pt``).  Programs (``torchscript``, ``pt2``) run only when trusted;
``onnx`` is data for ONNX Runtime.  :func:`missing_weights_message` says what a folder
without any form lacks.  No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from inference.models.architectures import BACKBONE_HEAD, is_known_architecture
from inference.models.card import ONNX_NAME, PT2_NAME, TORCHSCRIPT_NAME, ModelCard

FormKind = Literal["eager", "torchscript", "pt2", "onnx"]

#: State-dict files, most preferred first (safetensors before pickles).
STATE_DICT_NAMES = ("model.safetensors", "model.pt", "model.pth", "pytorch_model.bin", "model.bin")
#: Every form, in the order of preference when nothing was measured.
FORM_ORDER: tuple[FormKind, ...] = ("eager", "pt2", "onnx", "torchscript")
#: What each form runs on, for people.
FORM_LABELS: dict[str, str] = {
    "eager": "PyTorch (eager)",
    "pt2": "torch.export program",
    "onnx": "ONNX Runtime",
    "torchscript": "TorchScript",
}
#: Forms that are programs: loading them can run code, so they need the user's trust.
PROGRAM_FORMS: tuple[FormKind, ...] = ("torchscript", "pt2")


@dataclass(frozen=True)
class ModelForm:
    """One form of a folder's model: its kind, main file and further files (a
    ``backbone+head`` model's backbone weights)."""

    kind: FormKind
    path: Path
    extra: tuple[Path, ...] = ()

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file this form reads."""
        return (*self.extra, self.path)

    @property
    def is_program(self) -> bool:
        """Whether loading it may run code (TorchScript, ``torch.export``)."""
        return self.kind in PROGRAM_FORMS

    @property
    def label(self) -> str:
        return FORM_LABELS[self.kind]


def _eager_form(folder: Path, card: ModelCard | None) -> ModelForm | None:
    if card is not None and card.architecture == BACKBONE_HEAD:
        backbone = folder / str(card.backbone.get("weights", ""))
        head = folder / str(card.head.get("weights", ""))
        if backbone.is_file() and head.is_file():
            return ModelForm("eager", head, (backbone,))
        return None
    if card is not None and not is_known_architecture(card.architecture):
        return None
    for name in STATE_DICT_NAMES:
        if (folder / name).is_file():
            return ModelForm("eager", folder / name)
    return None


def find_forms(folder: Path, card: ModelCard | None = None) -> list[ModelForm]:
    """Every form the folder holds, in :data:`FORM_ORDER` (see the module docstring).

    Without ``card`` any state-dict file counts as an eager form.
    """
    folder = Path(folder)
    forms: list[ModelForm] = []
    eager = _eager_form(folder, card)
    if eager is not None:
        forms.append(eager)
    for kind, name in (("pt2", PT2_NAME), ("onnx", ONNX_NAME), ("torchscript", TORCHSCRIPT_NAME)):
        if (folder / name).is_file():
            forms.append(ModelForm(kind, folder / name))  # type: ignore[arg-type]
    return forms


def missing_weights_message(folder: Path, card: ModelCard | None) -> str:
    """Why a folder offers no form, and which files would do."""
    if card is not None and card.architecture == BACKBONE_HEAD:
        names = [str(card.backbone.get("weights")), str(card.head.get("weights"))]
        absent = [n for n in names if not (folder / n).is_file()]
        return (
            f"{folder}: no weights found: the backbone+head card names "
            f"{' and '.join(names)}, and {', '.join(absent)} is missing "
            f"(or add {PT2_NAME} / {ONNX_NAME})"
        )
    every = (*STATE_DICT_NAMES, PT2_NAME, ONNX_NAME, TORCHSCRIPT_NAME)
    return (
        f"{folder}: no weights found; a model folder needs one of {', '.join(every)} "
        "beside config.json"
    )

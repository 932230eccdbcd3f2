"""Weights files as data: reading a state dict without running code, and fitting it to a module.

Contract: :func:`load_state_dict_file` reads ``.safetensors`` through safetensors and
anything else through ``torch.load(weights_only=True)``; a pickle that would run code is
refused (never retried with ``weights_only=False``), as is a TorchScript archive under
a state-dict name.  :func:`fit_state_dict` loads a state dict into a module only when it
fits exactly (after stripping a ``module.`` / ``model.`` / ``_orig_mod.`` prefix shared by
every key), otherwise the error lists a few missing and unexpected keys and shape
mismatches.  Every error is a :class:`~inference.models.errors.ModelLoadError` naming the
file.  torch is imported inside functions only.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inference.models.card import TORCHSCRIPT_NAME
from inference.models.errors import ModelLoadError

if TYPE_CHECKING:
    import torch
    from torch import nn

PREFIXES = ("module.", "model.", "_orig_mod.")
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights")
_SHOW = 5


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, read without running any code from it.

    ``.safetensors`` through safetensors; anything else through ``torch.load`` with
    ``weights_only=True``.  A checkpoint that wraps the state dict (``{"state_dict": ...}``)
    is unwrapped.  Raises :class:`ModelLoadError` for a pickle that holds code (refused,
    never run), a TorchScript archive, or a file that is not weights.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: weights file not found", path=path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelLoadError(
                f"{path}: not a readable safetensors file ({exc}); "
                "re-export the weights with safetensors.torch.save_file",
                path=path,
            ) from exc
    if is_torchscript_archive(path):
        raise ModelLoadError(
            f"{path}: refused: this is a TorchScript program, not a state dict; name it "
            f"{TORCHSCRIPT_NAME} and load it only if you trust it (--trust)",
            path=path,
        )
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*pickle protocol.*")
            obj = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        raise ModelLoadError(
            f"{path}: refused: this file contains code, not just weights, and SlideLens "
            "never runs code from a weights file. Ask for a model.safetensors, or save "
            "model.state_dict() (weights only) from a Python you trust.",
            path=path,
        ) from exc
    except Exception as exc:
        raise ModelLoadError(
            f"{path}: not a PyTorch state dict ({type(exc).__name__}: {exc}); "
            "provide model.safetensors or a state dict saved with torch.save",
            path=path,
        ) from exc
    return _as_state_dict(obj, path)


def is_torchscript_archive(path: Path) -> bool:
    """Whether a file is a TorchScript archive (a zip holding code), read without loading."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("/constants.pkl") or "/code/" in n for n in names)


def _as_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    import torch

    if isinstance(obj, Mapping) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner:
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj:
        raise ModelLoadError(
            f"{path}: holds no state dict (got {type(obj).__name__}); "
            "save model.state_dict() or use safetensors",
            path=path,
        )
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ModelLoadError(
            f"{path}: entries that are not tensors: {', '.join(map(str, bad[:_SHOW]))}; "
            "save model.state_dict() only",
            path=path,
        )
    return {str(k): v for k, v in obj.items()}


def strip_prefixes(state: dict[str, Any], expected: Iterable[str]) -> dict[str, Any]:
    """Drop a prefix every key shares (``module.``, ``model.``...) until keys match."""
    wanted = set(expected)
    while not wanted.issuperset(state):
        for prefix in PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                break
        else:
            break
    return state


def fit_state_dict(
    module: nn.Module,
    state: dict[str, torch.Tensor],
    path: Path,
    what: str,
    fix: str,
    *,
    ignore: tuple[str, ...] = (),
) -> None:
    """Load ``state`` into ``module`` when it fits exactly, else raise naming the file.

    ``what`` says what the weights should be ("architecture 'resnet34' with 2 classes"),
    ``fix`` what to check; unexpected keys starting with an ``ignore`` prefix are dropped
    (a classifier a feature extractor does not have).
    """
    model_state = module.state_dict()
    state = strip_prefixes(state, model_state)
    state = {
        k: v for k, v in state.items() if k in model_state or not k.startswith(ignore or ("\0",))
    }
    missing = [k for k in model_state if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in model_state]
    mismatched = [
        f"{k} is {tuple(state[k].shape)} in the file but {tuple(v.shape)} in the model"
        for k, v in model_state.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({', '.join(missing[:_SHOW])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({', '.join(unexpected[:_SHOW])})")
        if mismatched:
            parts.append("shape mismatch: " + "; ".join(mismatched[:_SHOW]))
        raise ModelLoadError(
            f"{path}: the weights do not fit {what}: {', '.join(parts)}. {fix}", path=path
        )
    module.load_state_dict(state, strict=False)

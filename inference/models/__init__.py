"""Models: cards (WSInfer config.json + our keys), architectures, safe loading, registry.

Importing this package does not load torch; only building or loading a model does.
"""

from inference.models.card import ModelCard, ModelCardError, ModelError, load_card
from inference.models.loading import (
    LoadedModel,
    ModelLoadError,
    UntrustedModelError,
    load_model,
)
from inference.models.registry import (
    ModelEntry,
    ModelNotFoundError,
    bundled_models_dir,
    list_models,
    resolve_model,
    user_models_dir,
)
from inference.models.trust import TrustStore, file_sha256

__all__ = [
    "LoadedModel",
    "ModelCard",
    "ModelCardError",
    "ModelEntry",
    "ModelError",
    "ModelLoadError",
    "ModelNotFoundError",
    "TrustStore",
    "UntrustedModelError",
    "bundled_models_dir",
    "file_sha256",
    "list_models",
    "load_card",
    "load_model",
    "resolve_model",
    "user_models_dir",
]

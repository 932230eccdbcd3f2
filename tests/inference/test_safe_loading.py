"""Safe loading: weights are data, pickles that hold code are refused and never run,
TorchScript programs load only when trusted (remembered by SHA-256)."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from inference.models.architectures import build_architecture, default_cam_layer
from inference.models.loading import (
    ModelLoadError,
    UntrustedModelError,
    load_model,
    load_state_dict_file,
)
from inference.models.trust import TrustStore, file_sha256

torch.set_num_threads(1)

CARD: dict[str, Any] = {
    "spec_version": "1.0",
    "architecture": "small_cnn",
    "num_classes": 2,
    "class_names": ["other", "tumour"],
    "patch_size_pixels": 64,
    "spacing_um_px": 0.5,
    "transform": [
        {"name": "Resize", "arguments": {"size": 32}},
        {"name": "ToTensor"},
        {"name": "Normalize", "arguments": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}},
    ],
    "slidelens": {"cam_target_layer": "features.2"},
}


class MarkerPayload:
    """Unpickling this creates ``marker``: a harmless stand-in for code in a weights file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def make_folder(folder: Path, card: dict[str, Any] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(card or CARD), encoding="utf-8")
    return folder


def small_cnn_state(seed: int = 0, num_classes: int = 2) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return build_architecture("small_cnn", num_classes).state_dict()


def save_safetensors(path: Path, state: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(path))


def save_torchscript(path: Path, module: torch.nn.Module) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated upstream; WSInfer still uses it
        torch.jit.script(module).save(str(path))


def test_safetensors_model_loads_and_runs(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "m")
    state = small_cnn_state()
    save_safetensors(folder / "model.safetensors", state)
    loaded = load_model(folder)
    assert loaded.kind == "eager"
    assert loaded.weights_path == folder / "model.safetensors"
    assert loaded.sha256 == file_sha256(folder / "model.safetensors")
    assert not loaded.module.training
    assert loaded.cam_target_layer == "features.2"
    for key, value in loaded.module.state_dict().items():
        assert torch.equal(value, state[key])
    rgb = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    x = loaded.preprocess(rgb)
    assert x.shape == (3, 3, 32, 32) and x.dtype == torch.float32
    flat = torch.from_numpy(np.full((1, 32, 32, 3), 128, np.uint8))
    same = loaded.preprocess(flat.numpy())
    assert torch.allclose(same, torch.full_like(same, (128 / 255 - 0.5) / 0.25), atol=1e-6)
    with torch.inference_mode():
        probs = loaded.postprocess(loaded.module(x))
    assert probs.shape == (3, 2)
    assert torch.allclose(probs.sum(dim=1), torch.ones(3), atol=1e-5)


def test_state_dict_pt_with_module_prefix_loads(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "m")
    state = small_cnn_state(1)
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, folder / "model.pt")
    loaded = load_model(folder)
    assert torch.equal(
        loaded.module.state_dict()["features.0.0.weight"], state["features.0.0.weight"]
    )


def test_safetensors_is_preferred_over_a_pickle_and_torchscript(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "m")
    save_safetensors(folder / "model.safetensors", small_cnn_state())
    (folder / "model.pt").write_bytes(b"never read")
    save_torchscript(folder / "torchscript_model.pt", torch.nn.Linear(2, 2))
    assert load_model(folder).weights_path.name == "model.safetensors"


@pytest.mark.parametrize("file_name", ["model.pt", "pytorch_model.bin"])
def test_pickle_with_code_is_refused_and_never_runs(tmp_path: Path, file_name: str) -> None:
    # The payload really would create its marker when unpickled normally:
    proof = tmp_path / "proof-marker"
    pickle.loads(pickle.dumps(MarkerPayload(proof))).close()
    assert proof.exists()

    marker = tmp_path / "MARKER"
    folder = make_folder(tmp_path / "evil")
    state: dict[str, Any] = dict(small_cnn_state())
    state["features.0.0.weight"] = MarkerPayload(marker)
    if file_name.endswith(".bin"):  # legacy (non-zip) pickle
        with (folder / file_name).open("wb") as handle:
            pickle.dump(state, handle)
    else:
        torch.save(state, folder / file_name)
    with pytest.raises(ModelLoadError, match="refused: this file contains code, not just weights"):
        load_model(folder)
    assert not marker.exists()


def test_whole_pickled_module_is_refused(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "m")
    torch.save(build_architecture("small_cnn", 2), folder / "model.pth")
    with pytest.raises(ModelLoadError, match="contains code") as info:
        load_model(folder)
    assert str(folder / "model.pth") in str(info.value)


def test_torchscript_under_a_state_dict_name_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    save_torchscript(path, torch.nn.Linear(2, 2))
    with pytest.raises(ModelLoadError, match="TorchScript program, not a state dict"):
        load_state_dict_file(path)


def _torchscript_folder(tmp_path: Path) -> Path:
    card = {**CARD, "architecture": "some_zoo_net", "slidelens": {}}
    folder = make_folder(tmp_path / "zoo-model", card)
    torch.manual_seed(0)
    save_torchscript(folder / "torchscript_model.pt", build_architecture("small_cnn", 2))
    return folder


def test_torchscript_without_trust_is_refused(tmp_path: Path) -> None:
    folder = _torchscript_folder(tmp_path)
    store = TrustStore(tmp_path / "trust.json")
    with pytest.raises(UntrustedModelError, match="--trust") as info:
        load_model(folder, trust_store=store)
    assert info.value.path == folder / "torchscript_model.pt"
    assert info.value.sha256 == file_sha256(folder / "torchscript_model.pt")
    assert not store.is_trusted(info.value.sha256)
    # The default store (the isolated user data dir) trusts nothing either.
    with pytest.raises(UntrustedModelError):
        load_model(folder)


def test_trusting_torchscript_is_remembered_by_hash(tmp_path: Path) -> None:
    folder = _torchscript_folder(tmp_path)
    store = TrustStore(tmp_path / "trust.json")
    loaded = load_model(folder, trust=True, trust_store=store)
    assert loaded.kind == "torchscript"
    assert loaded.cam_target_layer is None  # unknown architecture, no card layer
    with torch.inference_mode():
        out = loaded.module(loaded.preprocess(np.zeros((2, 64, 64, 3), np.uint8)))
    assert out.shape == (2, 2)
    assert store.is_trusted(loaded.sha256)
    # A fresh store object reading the same file remembers it:
    assert load_model(folder, trust_store=TrustStore(tmp_path / "trust.json")).kind == "torchscript"
    # A changed program is a different hash and must be trusted again:
    torch.manual_seed(1)
    save_torchscript(folder / "torchscript_model.pt", build_architecture("small_cnn", 2))
    with pytest.raises(UntrustedModelError):
        load_model(folder, trust_store=store)


def test_trust_store_default_location_and_corrupt_file(tmp_path: Path) -> None:
    store = TrustStore()
    store.trust("AB" * 32, tmp_path / "x.pt")
    assert store.path.parent == Path(__import__("os").environ["SLIDELENS_DATA_DIR"])
    assert TrustStore().is_trusted("ab" * 32)
    store.path.write_text("{ not json", encoding="utf-8")
    assert not TrustStore().is_trusted("ab" * 32)
    store.revoke("ab" * 32)


def test_weights_that_do_not_fit_list_the_keys(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "m")
    state = small_cnn_state(num_classes=3)
    state["extra.weight"] = torch.zeros(1)
    del state["features.1.0.bias"]
    save_safetensors(folder / "model.safetensors", state)
    with pytest.raises(ModelLoadError) as info:
        load_model(folder)
    message = str(info.value)
    assert "1 missing keys (features.1.0.bias)" in message
    assert "1 unexpected keys (extra.weight)" in message
    assert "classifier.4.weight is (3, 128) in the file but (2, 128) in the model" in message
    assert "Check 'architecture' and 'num_classes'" in message


def test_missing_cam_layer_junk_weights_and_no_weights(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "a", {**CARD, "slidelens": {"cam_target_layer": "layer4"}})
    save_safetensors(folder / "model.safetensors", small_cnn_state())
    with pytest.raises(ModelLoadError, match=r"slidelens.cam_target_layer.*'features\.2'"):
        load_model(folder)

    junk = make_folder(tmp_path / "b")
    (junk / "model.safetensors").write_bytes(b"hello, not tensors")
    with pytest.raises(ModelLoadError, match="not a readable safetensors file"):
        load_model(junk)

    junk_pt = make_folder(tmp_path / "c")
    (junk_pt / "model.pt").write_bytes(b"hello, not a pickle")
    with pytest.raises(ModelLoadError, match="not a PyTorch state dict"):
        load_model(junk_pt)

    empty = make_folder(tmp_path / "d")
    with pytest.raises(ModelLoadError, match="no weights found"):
        load_model(empty)


@pytest.mark.parametrize(
    ("name", "task"),
    [
        ("resnet18", "classification"),
        ("efficientnet_b0", "classification"),
        ("vgg16_bn", "classification"),
        ("densenet121", "classification"),
        ("small_cnn", "classification"),
        ("unet_small", "segmentation"),
    ],
)
def test_architectures_build_offline_and_have_their_cam_layer(name: str, task: Any) -> None:
    small = name in ("small_cnn", "unet_small")
    with torch.device("cpu" if small else "meta"):  # meta: no memory, no time for big nets
        module = build_architecture(name, 3, task)
    layers = dict(module.named_modules())
    assert default_cam_layer(name) in layers
    if small:
        with torch.inference_mode():
            out = module.eval()(torch.zeros(1, 3, 64, 64))
        assert out.shape == ((1, 3) if task == "classification" else (1, 3, 64, 64))


def test_timm_names_build_offline_or_fail_clearly() -> None:
    """timm is a dependency: a timm name builds with random weights (nothing downloaded);
    an unknown name or an argument that would download is a clear error."""
    from inference.models.architectures import ArchitectureError

    with torch.device("meta"):
        module = build_architecture("timm:resnet18", 3)
    assert module.fc.out_features == 3
    with pytest.raises(ArchitectureError, match="timm has no model named 'no_such_net'"):
        build_architecture("timm:no_such_net", 2)
    with pytest.raises(ArchitectureError, match="'pretrained' is not allowed"):
        build_architecture("timm:resnet18", 2, model_args={"pretrained": True})

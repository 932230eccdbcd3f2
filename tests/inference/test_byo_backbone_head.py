"""A backbone+head card: a timm ViT feature extractor and a small MLP head trained on its
embeddings, composed into one module that the engine, the CLI, CAMs and export run like
any model; bad parts get messages naming the file and the fix."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.cli.main import main
from inference.explain.requests import CamRequest
from inference.explain.service import explain_patch
from inference.models import ModelCardError, ModelLoadError, load_card, load_model
from inference.models.convert import convert_model
from tests.helpers.slides import ArraySource, tissue_image
from tests.inference.byo_helpers import (
    TINY_VIT_ARGS,
    backbone_head_folder,
    head_mlp,
    save_state,
    uint8_patches,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from inference.slides.synth.writer import SynthParams, write_synthetic_slide

    path = tmp_path_factory.mktemp("slide") / "synth-bh.tiff"
    write_synthetic_slide(path, SynthParams(width=1024, height=768, seed=2, mpp=0.5))
    return path


@pytest.mark.parametrize("pool", ["default", "cls+mean"])
def test_composed_model_is_head_of_backbone(tmp_path: Path, pool: str) -> None:
    folder, backbone, head = backbone_head_folder(tmp_path / "bh", pool=pool)
    model = load_model(folder)
    assert model.kind == "eager" and model.cam_target_layer == "backbone.blocks.-1.norm1"
    x = model.to_model_input(uint8_patches(3, 64))
    with torch.inference_mode():
        if pool == "default":
            embedding = backbone(x)
        else:
            tokens = backbone.forward_features(x)
            embedding = torch.cat([tokens[:, 0], tokens[:, 1:].mean(dim=1)], dim=-1)
        expected = head(embedding)
        got = model.module(x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_backbone_head_runs_end_to_end_through_infer(slide: Path, tmp_path: Path) -> None:
    folder, _, _ = backbone_head_folder(tmp_path / "bh")
    out = tmp_path / "out"
    args = ["infer", str(slide), "--model", str(folder), "--out", str(out), "--device", "cpu"]
    assert main([*args, "--batch-size", "8", "-q"]) == 0
    doc = json.loads((out / "synth-bh.run.json").read_text())
    assert doc["status"] == "complete" and doc["counts"]["computed"] > 0
    assert doc["model"]["card"]["architecture"] == "backbone+head"
    assert doc["model"]["backend"]["backend"] == "eager"

    def sha(name: str) -> str:
        return hashlib.sha256((folder / name).read_bytes()).hexdigest()

    names = ("backbone.safetensors", "head.safetensors")
    both = "\n".join(f"{name}:{sha(name)}" for name in names)
    assert doc["model"]["sha256"] == hashlib.sha256(both.encode()).hexdigest()
    rows = (out / "synth-bh.csv").read_text().splitlines()
    assert len(rows) == doc["counts"]["computed"] + 1


def test_gradcam_on_the_backbone_and_onnx_export(tmp_path: Path) -> None:
    folder, _, _ = backbone_head_folder(tmp_path / "bh")
    model = load_model(folder)
    source = ArraySource(tissue_image(256, 256, seed=1), mpp=0.5)
    # class 1: this random head's class-0 map is all negative before the ReLU
    cam = explain_patch(source, model, 64, 64, CamRequest(method="gradcam", target=1))
    assert cam.provenance["layer"] == "backbone.blocks.1.norm1"
    assert cam.provenance["layer_layout"] == "tokens" and cam.raw.max() > 0
    conversion = convert_model(model, "onnx", tmp_path / "onnx", alone=True)
    assert conversion.max_abs_diff <= 1e-4
    onnx = load_model(tmp_path / "onnx")
    rgb = uint8_patches(4, 64, seed=3)
    with torch.inference_mode():
        got = onnx.module(onnx.to_model_input(rgb))
        expected = model.module(model.to_model_input(rgb))
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-4)


def test_a_head_that_does_not_fit_names_its_file(tmp_path: Path) -> None:
    folder, _, _ = backbone_head_folder(tmp_path / "bh")
    save_state(head_mlp(TINY_VIT_ARGS["embed_dim"] + 1, 8, 2), folder / "head.safetensors")
    with pytest.raises(ModelLoadError) as info:
        load_model(folder)
    assert str(folder / "head.safetensors") in str(info.value)
    assert "the head takes 33 features but the backbone's embedding has 32" in str(info.value)
    save_state(head_mlp(TINY_VIT_ARGS["embed_dim"], 8, 3), folder / "head.safetensors")
    with pytest.raises(
        ModelLoadError, match="the head has 3 outputs but the card has num_classes 2"
    ):
        load_model(folder)


def test_card_problems_of_a_backbone_head_card(tmp_path: Path) -> None:
    folder, _, _ = backbone_head_folder(tmp_path / "bh")
    data = json.loads((folder / "config.json").read_text())
    del data["slidelens"]["head"]
    data["slidelens"]["backbone"]["weights"] = "../elsewhere/backbone.safetensors"
    data["slidelens"]["backbone"]["model_args"]["pretrained"] = True
    (folder / "config.json").write_text(json.dumps(data))
    with pytest.raises(ModelCardError) as info:
        load_card(folder)
    problems = dict(info.value.problems)
    assert problems["slidelens.head"] == "is required when architecture is 'backbone+head'"
    assert "must be a file name inside the model folder" in problems["slidelens.backbone.weights"]
    assert "'pretrained' is not allowed" in problems["slidelens.backbone.model_args"]


def test_missing_backbone_file_says_which(tmp_path: Path) -> None:
    folder, _, _ = backbone_head_folder(tmp_path / "bh")
    (folder / "backbone.safetensors").unlink()
    with pytest.raises(ModelLoadError, match=r"backbone\.safetensors is missing"):
        load_model(folder)

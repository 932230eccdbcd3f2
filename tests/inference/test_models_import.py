"""``slidelens models import``: WSInfer zoo downloads in the Hugging Face cache layout, timm
checkpoint folders (a classifier, a feature extractor with a head), an ONNX file; what
is missing is named with the flag that gives it, and nothing is written then."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from inference.cli.main import main
from inference.models import load_model
from inference.models.architectures import build_architecture
from inference.models.convert import convert_model
from inference.models.registry import bundled_models_dir
from tests.inference.byo_helpers import head_mlp, save_state, timm_model, uint8_patches

torch.set_num_threads(1)
REVISION = "3f1c0ffee0ddba11" + "0" * 24

WSINFER_CONFIG: dict[str, Any] = {
    "spec_version": "1.0",
    "architecture": "small_cnn",
    "num_classes": 2,
    "class_names": ["notumor", "tumor"],
    "patch_size_pixels": 96,
    "spacing_um_px": 0.5,
    "transform": [
        {"name": "Resize", "arguments": {"size": 64}},
        {"name": "ToTensor"},
        {"name": "Normalize", "arguments": {"mean": [0.7, 0.5, 0.7], "std": [0.2, 0.2, 0.2]}},
    ],
}


def hf_cache(root: Path, repo_id: str, files: dict[str, bytes]) -> Path:
    """A model as ``huggingface_hub`` leaves it: blobs by hash, a snapshot of symlinks."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / REVISION
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for name, data in files.items():
        digest = hashlib.sha256(data).hexdigest()
        (repo / "blobs" / digest).write_bytes(data)
        (snapshot / name).symlink_to(Path("..") / ".." / "blobs" / digest)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    return repo


def _zoo_files(tmp_path: Path, config: dict[str, Any]) -> tuple[dict[str, bytes], torch.nn.Module]:
    torch.manual_seed(7)
    module = build_architecture("small_cnn", 2).eval()
    save_state(module, tmp_path / "w.safetensors")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated upstream
        torch.jit.script(module).save(str(tmp_path / "ts.pt"))
    files = {
        "config.json": json.dumps(config).encode(),
        "model.safetensors": (tmp_path / "w.safetensors").read_bytes(),
        "torchscript_model.pt": (tmp_path / "ts.pt").read_bytes(),
        "README.md": b"# a zoo model\n",
    }
    return files, module


def _import(*args: str) -> int:
    return main(["models", "import", *args])


def test_wsinfer_zoo_download_in_the_hf_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files, module = _zoo_files(tmp_path, WSINFER_CONFIG)
    repo = hf_cache(tmp_path / "hub", "kaczmarj/tiny-tumor.tcga", files)
    models = tmp_path / "models"
    assert _import(str(repo), "--out", str(models)) == 0
    out = capsys.readouterr().out
    assert "found: WSInfer model folder" in out
    assert "Hugging Face cache: kaczmarj/tiny-tumor.tcga, snapshot 3f1c0ffee0dd" in out
    assert "README.md (not used)" in out
    assert "torchscript_model.pt: not loaded, a program runs code" in out
    assert "model.safetensors: loads (PyTorch (eager)) and gives 2 outputs per patch" in out
    folder = models / "tiny-tumor.tcga"
    assert f"wrote: {folder}" in out
    written = {p.name: p for p in folder.iterdir()}
    assert set(written) == {"config.json", "model.safetensors", "torchscript_model.pt"}
    assert not any(p.is_symlink() for p in written.values())  # content, not links
    card = json.loads(written["config.json"].read_text())
    assert card["slidelens"]["origin"]["hugging_face_repo"] == "kaczmarj/tiny-tumor.tcga"
    assert card["slidelens"]["origin"]["revision"] == REVISION
    model = load_model(folder)
    assert model.kind == "eager"  # the untrusted program is skipped
    rgb = uint8_patches(2, 96)
    with torch.inference_mode():
        x = model.to_model_input(rgb)
        torch.testing.assert_close(model.module(x), module(x))
    # the same download again: refused unless --force
    assert _import(str(repo), "--out", str(models)) == 2
    assert "exists; choose another --name" in capsys.readouterr().err
    assert _import(str(repo), "--out", str(models), "--force") == 0


def test_missing_spacing_names_the_flag_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {k: v for k, v in WSINFER_CONFIG.items() if k != "spacing_um_px"}
    files, _ = _zoo_files(tmp_path, config)
    repo = hf_cache(tmp_path / "hub", "someone/no-spacing", files)
    snapshot = repo / "snapshots" / REVISION
    models = tmp_path / "models"
    assert _import(str(snapshot), "--out", str(models)) == 2
    captured = capsys.readouterr()
    assert "spacing_um_px: give --spacing UM_PER_PX" in captured.out
    assert "nothing written" in captured.err
    assert not (models / "no-spacing").exists()
    assert _import(str(snapshot), "--out", str(models), "--spacing", "0.25") == 0
    assert "spacing_um_px = 0.25 from the flag" in capsys.readouterr().out
    assert json.loads((models / "no-spacing" / "config.json").read_text())["spacing_um_px"] == 0.25


def _timm_checkpoint(folder: Path, module: torch.nn.Module, config: dict[str, Any]) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    torch.save(module.state_dict(), folder / "pytorch_model.bin")
    return folder


def test_timm_checkpoint_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module = timm_model("test_resnet", 3)
    config = {
        "architecture": "test_resnet",
        "num_classes": 3,
        "num_features": 256,
        "label_names": ["stroma", "tumour", "necrosis"],
        "pretrained_cfg": {
            "input_size": [3, 160, 160],
            "interpolation": "bicubic",
            "crop_pct": 0.95,
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
        },
    }
    source = _timm_checkpoint(tmp_path / "ckpt", module, config)
    models = tmp_path / "models"
    assert _import(str(source), "--out", str(models)) == 2
    out = capsys.readouterr().out
    assert "patch_size_pixels: give --patch-size PIXELS" in out
    assert "spacing_um_px: give --spacing UM_PER_PX" in out
    args = ["--out", str(models), "--patch-size", "320", "--spacing", "0.5", "--name", "tr"]
    assert _import(str(source), *args) == 0
    out = capsys.readouterr().out
    assert "pytorch_model.bin rewritten as model.safetensors (tensors only)" in out
    assert "pretrained_cfg.interpolation 'bicubic'" in out
    card = json.loads((models / "tr" / "config.json").read_text())
    assert card["architecture"] == "timm:test_resnet"
    assert card["class_names"] == ["stroma", "tumour", "necrosis"]
    assert card["transform"][0] == {"name": "Resize", "arguments": {"size": 160}}
    model = load_model(models / "tr")
    assert sorted(p.name for p in (models / "tr").iterdir()) == ["config.json", "model.safetensors"]
    rgb = uint8_patches(2, 320)
    with torch.inference_mode():
        x = model.to_model_input(rgb)
        torch.testing.assert_close(model.module(x), module(x))


def test_timm_feature_extractor_with_a_head(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backbone = timm_model("test_vit", 0)
    config = {
        "architecture": "test_vit",
        "num_classes": 0,
        "num_features": backbone.num_features,
        "model_args": {"num_classes": 0},
        "pretrained_cfg": {"input_size": [3, 160, 160], "mean": [0.5] * 3, "std": [0.5] * 3},
    }
    source = _timm_checkpoint(tmp_path / "uni-like", backbone, config)
    models = tmp_path / "models"
    flags = ["--out", str(models), "--patch-size", "160", "--spacing", "0.5"]
    assert _import(str(source), *flags) == 2
    assert "slidelens.head: give --head HEAD.safetensors" in capsys.readouterr().out
    head = head_mlp(backbone.num_features, 8, 2)
    save_state(head, tmp_path / "head.safetensors")
    more = ["--head", str(tmp_path / "head.safetensors"), "--classes", "benign,tumour"]
    assert _import(str(source), *flags, *more) == 0
    card = json.loads((models / "uni-like" / "config.json").read_text())
    assert card["architecture"] == "backbone+head"
    assert "model_args" not in card["slidelens"]["backbone"]  # num_classes is the card's
    model = load_model(models / "uni-like")
    rgb = uint8_patches(2, 160)
    with torch.inference_mode():
        x = model.to_model_input(rgb)
        torch.testing.assert_close(model.module(x), head(backbone(x)))


def test_onnx_file_with_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    demo = load_model(bundled_models_dir() / "demo-tumour-classifier")
    convert_model(demo, "onnx", tmp_path / "made", alone=True)
    onnx_file = tmp_path / "tumour.onnx"
    (tmp_path / "made" / "model.onnx").rename(onnx_file)
    models = tmp_path / "models"
    norm = [
        "--mean",
        ",".join(map(str, demo.card.mean)),
        "--std",
        ",".join(map(str, demo.card.std)),
    ]
    flags = ["--out", str(models), "--patch-size", "128", "--spacing", "1", *norm]
    assert _import(str(onnx_file), *flags, "--classes", "a,b,c") == 2
    assert "gives 2 outputs per patch but the card has 3 classes" in capsys.readouterr().err
    assert not (models / "tumour").exists()
    assert _import(str(onnx_file), *flags, "--classes", "other,tumour") == 0
    assert "network input 128 px (the ONNX graph's input)" in capsys.readouterr().out
    model = load_model(models / "tumour")
    assert model.kind == "onnx"
    rgb = uint8_patches(3, 128)
    with torch.inference_mode():
        torch.testing.assert_close(
            model.module(model.to_model_input(rgb)),
            demo.module(demo.to_model_input(rgb)),
            atol=1e-4,
            rtol=0,
        )


def test_what_cannot_be_imported_is_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "weights.ckpt"
    junk.write_bytes(b"not a model")
    assert _import(str(junk)) == 2
    assert "not a TorchScript program, a torch.export program (.pt2) or an ONNX" in (
        capsys.readouterr().err
    )
    hub = tmp_path / "hub"
    for repo in ("a/one", "b/two"):
        hf_cache(hub, repo, {"config.json": json.dumps(WSINFER_CONFIG).encode()})
    assert _import(str(hub)) == 2
    err = capsys.readouterr().err
    assert "a Hugging Face cache holding 2 models (models--a--one, models--b--two)" in err
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "config.json").write_text(json.dumps({"hello": 1}))
    assert _import(str(odd)) == 2
    assert "neither a WSInfer model config" in capsys.readouterr().err

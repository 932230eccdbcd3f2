"""Bring your own model, by form: a timm ViT, a ResNet as a ``torch.export`` program, the
demo classifier as ONNX.  Every form gives eager's logits (fp32, 1e-4); Grad-CAM works on
the ViT (through pytorch-grad-cam's reshape transform) and on the ``.pt2`` (through
``torch.export.unflatten``), equal to eager's; ONNX gets the forward-only methods, or the
eager weights beside it; the engine runs the fastest form, measured once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inference.engine.job import InferenceJob
from inference.engine.runner import run
from inference.explain.layers import resolve_layer
from inference.explain.methods import method_spec
from inference.explain.progress import ProgressTracker
from inference.explain.requests import CamRequest
from inference.explain.reshape import reshape_for
from inference.explain.runner_base import RunSettings
from inference.explain.runners import make_runner
from inference.explain.service import available_methods, candidate_layers, explain_patch
from inference.explain.targets import ClassTarget
from inference.models import LoadedModel, load_card, load_model
from inference.models.backends import BackendStore, backend_summary
from inference.models.convert import convert_model
from inference.models.registry import bundled_models_dir
from tests.helpers.slides import ArraySource, tissue_image
from tests.inference.byo_helpers import card, timm_model, uint8_patches, vit_folder, write_folder

torch.set_num_threads(1)
DEMO = bundled_models_dir() / "demo-tumour-classifier"
TOL = 1e-4


@pytest.fixture(scope="module")
def slide() -> ArraySource:
    return ArraySource(tissue_image(512, 384, seed=4), mpp=0.5)


@pytest.fixture(scope="module")
def vit(tmp_path_factory: pytest.TempPathFactory) -> tuple[LoadedModel, torch.nn.Module]:
    folder, module = vit_folder(tmp_path_factory.mktemp("vit") / "vit")
    return load_model(folder), module


def _logits(model: LoadedModel, rgb: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model.module(model.to_model_input(rgb)).float()


# -- timm: a Vision Transformer ---------------------------------------------------------------


def test_timm_vit_card_runs_the_timm_model(vit: tuple[LoadedModel, torch.nn.Module]) -> None:
    model, reference = vit
    assert model.kind == "eager" and model.card.architecture == "timm:vit_tiny_patch16_224"
    assert model.cam_target_layer == "blocks.-1.norm1"  # the ViT family's default
    rgb = uint8_patches(3, 64)
    with torch.inference_mode():
        expected = reference(model.to_model_input(rgb))
    torch.testing.assert_close(_logits(model, rgb), expected, atol=TOL, rtol=0)


def test_gradcam_on_the_vit_reshapes_tokens_like_pytorch_grad_cam(
    vit: tuple[LoadedModel, torch.nn.Module],
) -> None:
    """Our raw map is the library's (with its documented ViT reshape transform) before
    its min-max scaling: the transform reached the CAM."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import scale_cam_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform

    model, _ = vit
    x = model.preprocess(tissue_image(64, 64, seed=3)[None])
    layer = resolve_layer(model.module, "blocks.-1.norm1")
    reshape = reshape_for(model.module, "blocks.11.norm1")
    assert reshape is not None
    runner = make_runner(
        method_spec("gradcam"),
        model.module,
        layer,
        RunSettings(patch_batch=2, masked_batch=4),
        ProgressTracker(None),
        x.device,
        reshape,
    )
    try:
        ours = runner(x, [ClassTarget(1)])
    finally:
        runner.close()
    assert ours.shape == (1, 14, 14) and ours.max() > 0
    lib = GradCAM(
        model=model.module, target_layers=[layer], reshape_transform=vit_reshape_transform
    )
    try:
        expected = lib(x, [ClassifierOutputTarget(1)])
    finally:
        lib.activations_and_grads.release()
    for p in model.module.parameters():
        p.grad = None
    # BaseCAM scales each layer's map to 0..1 at the input size, then the layers' mean
    scaled = scale_cam_image(scale_cam_image(ours, (224, 224)))
    np.testing.assert_allclose(scaled, expected, atol=2e-3)


def test_every_cam_explains_the_vit_on_a_slide(
    vit: tuple[LoadedModel, torch.nn.Module], slide: ArraySource
) -> None:
    model, _ = vit
    assert "blocks.11.norm1" in candidate_layers(model)
    assert all(m.available for m in available_methods(model))
    for method in ("gradcam", "eigencam", "saliency"):
        result = explain_patch(slide, model, 64, 64, CamRequest(method=method))
        assert np.isfinite(result.raw).all() and result.raw.max() > 0
        if method != "saliency":
            assert result.provenance["layer"] == "blocks.11.norm1"
            assert result.provenance["layer_layout"] == "tokens"


def test_swin_layer_is_channels_last() -> None:
    swin = timm_model("swin_tiny_patch4_window7_224", 2)
    layer = "layers.-1.blocks.-1.norm1"
    reshape = reshape_for(swin, layer)
    assert reshape is not None
    seen: list[tuple[int, ...]] = []
    handle = resolve_layer(swin, layer).register_forward_hook(
        lambda _m, _i, out: seen.append(tuple(reshape(out).shape))
    )
    with torch.inference_mode():
        swin(torch.zeros(1, 3, 224, 224))
    handle.remove()
    assert seen == [(1, 768, 7, 7)]


# -- torch.export: a ResNet as a .pt2 program ------------------------------------------------


@pytest.fixture(scope="module")
def resnet_forms(tmp_path_factory: pytest.TempPathFactory) -> tuple[LoadedModel, LoadedModel]:
    root = tmp_path_factory.mktemp("resnet")
    from inference.models.architectures import build_architecture

    torch.manual_seed(0)
    eager_folder = write_folder(root / "eager", card("resnet18"), build_architecture("resnet18", 2))
    eager = load_model(eager_folder)
    conversion = convert_model(eager, "pt2", root / "pt2", alone=True)
    assert conversion.max_abs_diff <= TOL
    assert {p.name for p in (root / "pt2").iterdir()} == {"config.json", "model.pt2"}
    # written here, so trusted: it loads without --trust
    return eager, load_model(root / "pt2")


def test_pt2_program_gives_eager_logits(resnet_forms: tuple[LoadedModel, LoadedModel]) -> None:
    eager, program = resnet_forms
    assert program.kind == "pt2" and program.card.cam_target_layer == "layer4"
    rgb = uint8_patches(5, 64, seed=2)  # a batch size the export never saw
    torch.testing.assert_close(_logits(program, rgb), _logits(eager, rgb), atol=TOL, rtol=0)


def test_gradcam_on_the_pt2_equals_eager(
    resnet_forms: tuple[LoadedModel, LoadedModel], slide: ArraySource
) -> None:
    eager, program = resnet_forms
    explainer = program.explanation_model()
    assert explainer.module is not program.module  # unflattened: layers to hook
    assert "layer4" in candidate_layers(program)
    for method in ("gradcam", "layercam"):
        request = CamRequest(method=method)
        ours = explain_patch(slide, program, 200, 150, request)
        reference = explain_patch(slide, eager, 200, 150, request)
        assert ours.provenance["model"]["kind"] == "pt2"
        assert ours.raw.max() > 0
        np.testing.assert_allclose(ours.raw, reference.raw, rtol=1e-4, atol=1e-6)


# -- ONNX: the demo classifier ----------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_onnx(tmp_path_factory: pytest.TempPathFactory) -> tuple[LoadedModel, Path, Path]:
    """The demo classifier, its ONNX form alone, and a folder with both forms."""
    root = tmp_path_factory.mktemp("onnx")
    eager = load_model(DEMO)
    convert_model(eager, "onnx", root / "alone", alone=True)
    convert_model(eager, "onnx", root / "both")
    return eager, root / "alone", root / "both"


def test_onnx_gives_eager_logits(demo_onnx: tuple[LoadedModel, Path, Path]) -> None:
    eager, alone, _ = demo_onnx
    onnx = load_model(alone)
    assert onnx.kind == "onnx" and list(onnx.module.parameters()) == []
    rgb = uint8_patches(7, 128, seed=1)
    torch.testing.assert_close(_logits(onnx, rgb), _logits(eager, rgb), atol=TOL, rtol=0)


def test_engine_runs_onnx_like_eager(demo_onnx: tuple[LoadedModel, Path, Path]) -> None:
    eager, alone, _ = demo_onnx
    source = ArraySource(tissue_image(1024, 768, seed=6), mpp=0.5)

    def probs(model: LoadedModel) -> dict[tuple[int, int], np.ndarray]:
        """Each patch's probabilities, computed in two CPU lanes as the engine runs."""
        job = InferenceJob(slide=source, model=model, device="cpu", batch_size=4, cpu_lanes=2)
        return {
            (int(i), int(j)): p
            for batch in run(job)
            for (i, j), p in zip(batch.p_ij, batch.probs, strict=True)
        }

    ours, reference = probs(load_model(alone)), probs(eager)
    assert ours.keys() == reference.keys() and len(ours) > 4
    for key, value in ours.items():
        np.testing.assert_allclose(value, reference[key], atol=TOL)


def test_onnx_alone_explains_with_occlusion_only(
    demo_onnx: tuple[LoadedModel, Path, Path], slide: ArraySource
) -> None:
    onnx = load_model(demo_onnx[1])
    infos = {m.name: m for m in available_methods(onnx)}
    assert infos["occlusion"].available
    assert "ONNX Runtime" in str(infos["gradcam"].reason)
    assert "gradients" in str(infos["saliency"].reason)
    assert candidate_layers(onnx) == []
    result = explain_patch(slide, onnx, 200, 150, CamRequest(method="occlusion", occlusion_grid=3))
    assert result.provenance["model"]["kind"] == "onnx" and np.isfinite(result.raw).all()


def test_folder_with_both_runs_the_fastest_and_explains_with_eager(
    demo_onnx: tuple[LoadedModel, Path, Path], slide: ArraySource
) -> None:
    eager, _, both = demo_onnx
    store = BackendStore()
    assert "measured on first use" in backend_summary(load_card(both), store)
    first = load_model(both, backend_store=store)
    choice = first.backend_choice
    assert choice is not None and set(choice.patches_per_s) == {"eager", "onnx"}
    assert first.kind == choice.backend == max(choice.patches_per_s, key=choice.patches_per_s.get)
    assert first.backend["reason"].startswith("fastest here")
    # measured once: the next load reads the record
    again = load_model(both, backend_store=store)
    assert again.backend_choice == choice and again.kind == first.kind
    assert "the fastest on cpu here" in backend_summary(again.card, store)
    # asked for, a form runs whatever was measured
    assert load_model(both, backend="eager").kind == "eager"
    onnx = load_model(both, backend="onnx")
    assert onnx.explanation_model().kind == "eager"
    assert all(m.available for m in available_methods(onnx))
    cam = explain_patch(slide, onnx, 200, 150, CamRequest(method="gradcam"))
    reference = explain_patch(slide, eager, 200, 150, CamRequest(method="gradcam"))
    np.testing.assert_allclose(cam.raw, reference.raw, rtol=1e-5, atol=1e-7)
    with pytest.raises(Exception, match="no 'pt2' form here; this folder offers eager, onnx"):
        load_model(both, backend="pt2")

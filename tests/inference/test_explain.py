"""The explanation service on tiny CPU models: every method, one normalisation range per
region, blended seams, hooks released, TorchScript refusals, progress, cancel, classes.

``DarknessModel`` (a hand-built model whose CAM is proportional to how dark the tissue
is) and ``model_folder`` are reused by the other explain test files.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from inference.core.geometry import Rect
from inference.explain.layers import resolve_layer
from inference.explain.methods import (
    HOOK_FREE_METHODS,
    METHODS,
    ExplainCancelled,
    ExplainError,
    LayerNotFoundError,
    MethodUnavailableError,
    method_spec,
)
from inference.explain.progress import ProgressTracker
from inference.explain.requests import CamRequest
from inference.explain.runner_base import RunSettings
from inference.explain.runners import make_runner
from inference.explain.service import (
    available_methods,
    candidate_layers,
    explain_patch,
    explain_region,
)
from inference.explain.targets import ClassTarget, SegmentationTarget
from inference.models import LoadedModel, TrustStore, load_model
from tests.helpers.models import DarknessModel, model_folder
from tests.helpers.slides import DARK, LIGHT, WHITE, ArraySource, tissue_image, two_tone

ROOT = Path(__file__).resolve().parents[2]


# -- tiny models -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cnn(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    """small_cnn: 64 px patches at 1 um/px (128 level-0 px at mpp 0.5), layer features.2."""
    return load_model(model_folder(tmp_path_factory.mktemp("m") / "cnn"))


@pytest.fixture(scope="module")
def slide() -> ArraySource:
    return ArraySource(tissue_image(512, 384, seed=2), mpp=0.5)


def hook_count(module: torch.nn.Module) -> int:
    total = 0
    for m in module.modules():
        for name in (
            "_forward_hooks",
            "_forward_pre_hooks",
            "_backward_hooks",
            "_backward_pre_hooks",
        ):
            total += len(getattr(m, name, {}))
    return total


# -- every method ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_gives_a_raw_map_of_the_patch(
    method: str, cnn: LoadedModel, slide: ArraySource
) -> None:
    calls: list[tuple[int, int]] = []
    result = explain_patch(
        slide, cnn, 200, 150, CamRequest(method=method), progress=lambda d, t: calls.append((d, t))
    )
    # the patch under (200, 150) on the 128 px grid is (128, 128)..(256, 256)
    assert result.l0_origin == (128.0, 128.0)
    h, w = result.raw.shape
    assert h * result.l0_per_px == pytest.approx(128) and w * result.l0_per_px == pytest.approx(128)
    assert (h, w) == (64, 64)  # one CAM pixel per model input pixel
    assert result.raw.dtype == np.float32 and np.isfinite(result.raw).all()
    assert result.raw.min() >= 0 and result.vmax > 0
    assert result.l0_rect == Rect(128, 128, 128, 128)
    assert result.patch_l0_rects.tolist() == [[128, 128, 128, 128]]
    prov = result.provenance
    assert prov["method"] == method and prov["model"]["sha256"] == cnn.sha256
    assert prov["layer"] == ("features.2" if METHODS[method].hook_based else None)
    assert prov["versions"]["grad-cam"] == "1.5.7"
    assert prov["versions"]["torch"] == torch.__version__
    assert prov["normalisation"]["vmax"] == result.vmax
    assert sum(result.scores.values()) == pytest.approx(1.0, abs=1e-5)
    assert calls[0][0] == 0 and calls[-1] == (calls[-1][1], calls[-1][1])
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(calls))


def test_hook_methods_match_pytorch_grad_cam_up_to_its_scaling(cnn: LoadedModel) -> None:
    """Our raw maps are the library's before its per-image min-max scaling."""
    from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, ScoreCAM
    from pytorch_grad_cam.utils.image import scale_cam_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    rgb = tissue_image(64, 64, seed=5)[None]
    x = cnn.preprocess(rgb)
    layer = resolve_layer(cnn.module, "features.2")
    settings = RunSettings(patch_batch=4, masked_batch=16)
    pairs = (
        ("gradcam", GradCAM),
        ("gradcam++", GradCAMPlusPlus),
        ("scorecam", ScoreCAM),
        ("eigencam", EigenCAM),
    )
    for name, cls in pairs:
        runner = make_runner(
            method_spec(name), cnn.module, layer, settings, ProgressTracker(None), x.device
        )
        try:
            ours = runner(x, [ClassTarget(1)])
        finally:
            runner.close()
        assert ours.shape == (1, 8, 8)  # the layer's resolution: no resizing, no scaling
        lib = cls(model=cnn.module, target_layers=[layer])
        try:
            expected = lib(x, [ClassifierOutputTarget(1)])
        finally:
            lib.activations_and_grads.release()
        # BaseCAM scales each layer's map to 0..1 at the input size, then the layers' mean
        scaled = scale_cam_image(scale_cam_image(ours, (64, 64)))
        np.testing.assert_allclose(scaled, expected, atol=2e-3)
    for p in cnn.module.parameters():
        p.grad = None  # the library's own class leaves gradients on the model; ours does not


# -- one normalisation, blended seams ----------------------------------------------------------


def test_region_keeps_patch_strengths_comparable_with_one_range() -> None:
    """A dark and a pale half: per-patch min-max would make both look the same."""
    source = ArraySource(two_tone(), mpp=0.5)
    model = DarknessModel()
    result = explain_region(
        source, model, Rect(0, 0, 256, 128), CamRequest(method="gradcam", target="dark")
    )
    assert result.class_index == 0
    assert result.raw.shape == (64, 128)  # 2 level-0 px per CAM px: 32 input px per patch
    dark = result.raw[:, : 96 // 2]  # level-0 x < 96: only patches within the dark half
    pale = result.raw[:, 160 // 2 :]  # level-0 x >= 160: only pale patches
    ratio = float(np.median(dark) / np.median(pale))
    expected = (1 - np.mean(DARK) / 255) / (1 - np.mean(LIGHT) / 255)
    assert ratio == pytest.approx(expected, rel=0.1)  # about 3
    # one range for the whole region: the pale half stays dim, the dark one is bright
    norm = result.normalised()
    assert np.median(norm[:, 80:]) < 0.45 < 0.9 < np.median(norm[:, :48])
    doc = result.provenance["normalisation"]
    assert doc["kind"] == "shared-percentile" and doc["per_patch_minmax"] is False
    assert doc["vmax"] == pytest.approx(float(np.percentile(result.raw, 99)))
    # what pytorch-grad-cam would have shown: every patch scaled to its own 0..1
    from pytorch_grad_cam.utils.image import scale_cam_image

    own = [scale_cam_image(result.raw[:, a : a + 16][None])[0].max() for a in (0, 112)]
    assert own[0] == pytest.approx(own[1], abs=1e-3)  # both patches would peak at 1


def test_fixed_vmax_and_percentile_choose_the_range(slide: ArraySource, cnn: LoadedModel) -> None:
    rect = Rect(0, 0, 256, 256)
    base = explain_region(slide, cnn, rect, CamRequest(percentile=50))
    assert base.vmax == pytest.approx(float(np.nanpercentile(base.raw, 50)))
    fixed = explain_region(slide, cnn, rect, CamRequest(vmax=base.vmax * 2))
    assert fixed.vmax == base.vmax * 2 and fixed.provenance["normalisation"]["kind"] == "fixed"
    np.testing.assert_allclose(fixed.raw, base.raw, rtol=1e-5)
    with pytest.raises(ExplainError, match="vmax"):
        explain_region(slide, cnn, rect, CamRequest(vmax=-1))


def _seam_ratio(result: Any) -> float:
    """Mean jump across columns where a patch edge lies over the mean jump elsewhere."""
    jumps = np.abs(np.diff(result.raw, axis=1)).mean(axis=0)
    l0_patch = result.provenance["geometry"]["l0_patch"]
    edges = set()
    for l0_x in result.patch_l0_rects[:, 0]:
        for edge in (l0_x, l0_x + l0_patch):
            col = round((edge - result.l0_origin[0]) / result.l0_per_px) - 1
            if 0 <= col < len(jumps):
                edges.add(col)
    cols = sorted(edges)
    other = np.setdiff1d(np.arange(len(jumps)), cols)
    return float(jumps[cols].mean() / jumps[other].mean())


def test_overlapping_patches_blend_the_seams(cnn: LoadedModel) -> None:
    source = ArraySource(tissue_image(768, 384, seed=3), mpp=0.5)
    rect = Rect(0, 0, 768, 384)
    hard = explain_region(source, cnn, rect, CamRequest(overlap=0.0))
    soft = explain_region(source, cnn, rect, CamRequest())
    assert soft.provenance["geometry"]["overlap"] == 0.5  # the default for fast methods
    assert soft.provenance["geometry"]["patches"] > hard.provenance["geometry"]["patches"]
    assert _seam_ratio(hard) > 5  # zero padding makes every patch border visible
    assert _seam_ratio(soft) < 2  # Hann-weighted overlap: no visible seams


def test_region_skips_background_and_refuses_glass(cnn: LoadedModel) -> None:
    source = ArraySource(tissue_image(512, 256, tissue_cols=0.5), mpp=0.5)
    result = explain_region(source, cnn, Rect(0, 0, 512, 256), CamRequest(overlap=0.0))
    geometry = result.provenance["geometry"]
    assert geometry["patches"] == 4 and geometry["background_patches"] == 4
    assert result.raw.shape == (128, 256)  # 2 level-0 px per CAM px
    assert np.isnan(result.raw[:, 128:]).all() and np.isfinite(result.raw[:, :128]).all()
    with pytest.raises(ExplainError, match=r"holds no tissue"):
        explain_region(source, cnn, Rect(300, 0, 200, 200))
    with pytest.raises(ExplainError, match=r"outside the slide"):
        explain_region(source, cnn, Rect(600, 0, 50, 50))
    with pytest.raises(ExplainError, match=r"outside the slide array\.tiff \(512 x 256"):
        explain_patch(source, cnn, 10, 300)


# -- hooks -------------------------------------------------------------------------------------


def test_hooks_and_gradients_never_stay_on_the_model(cnn: LoadedModel, slide: ArraySource) -> None:
    before = hook_count(cnn.module)
    flags = [p.requires_grad for p in cnn.module.parameters()]
    for i in range(50):
        method = ("gradcam", "layercam", "eigencam", "hirescam", "saliency")[i % 5]
        explain_patch(slide, cnn, 200, 150, CamRequest(method=method))
        assert hook_count(cnn.module) == before
    # failures and cancels release them too
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(ExplainCancelled):
        explain_patch(slide, cnn, 200, 150, CamRequest(method="scorecam"), cancel=cancel)
    with pytest.raises(ExplainError):
        explain_patch(slide, cnn, 200, 150, CamRequest(method="gradcam", target="nope"))
    assert hook_count(cnn.module) == before
    assert [p.requires_grad for p in cnn.module.parameters()] == flags
    assert all(p.grad is None for p in cnn.module.parameters())


# -- TorchScript -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    folder = model_folder(tmp_path_factory.mktemp("ts") / "zoo", torchscript=True)
    store = TrustStore(tmp_path_factory.mktemp("trust") / "trust.json")
    return load_model(folder, trust=True, trust_store=store)


def test_torchscript_gets_hook_free_methods_and_a_reason_for_the_others(
    scripted: LoadedModel, slide: ArraySource
) -> None:
    assert scripted.kind == "torchscript"
    infos = {m.name: m for m in available_methods(scripted)}
    assert list(infos) == list(METHODS)
    for name, info in infos.items():
        if name in HOOK_FREE_METHODS:
            assert info.available and info.reason is None
        else:
            assert not info.available
            assert "register_forward_hook is not supported on ScriptModules" in str(info.reason)
    # the reason is true: what pytorch-grad-cam does first is refused by a ScriptModule
    layer = dict(scripted.module.named_modules())["features.2"]
    with pytest.raises(RuntimeError, match="register_forward_hook is not supported"):
        layer.register_forward_hook(lambda *args: None)
    with pytest.raises(MethodUnavailableError, match=r"TorchScript.*use saliency"):
        explain_patch(slide, scripted, 200, 150, CamRequest(method="gradcam", layer="features.2"))
    assert candidate_layers(scripted) == []
    for method in HOOK_FREE_METHODS:
        result = explain_patch(slide, scripted, 200, 150, CamRequest(method=method))
        assert result.raw.shape == (64, 64) and np.isfinite(result.raw).all()
        assert result.provenance["model"]["kind"] == "torchscript"


def test_eager_model_without_layer_says_so(cnn: LoadedModel) -> None:
    model = DarknessModel()
    object.__setattr__(model.card, "cam_target_layer", None)
    infos = {m.name: m for m in available_methods(model)}
    reason = str(infos["gradcam"].reason)
    assert not infos["gradcam"].available and "cam_target_layer" in reason
    assert "such as 'features.0'" in reason
    assert infos["saliency"].available
    assert {m.name: m.available for m in available_methods(model, layer="features")}["gradcam"]
    assert candidate_layers(model) == ["features", "features.0"]
    names = candidate_layers(cnn)
    assert names[0] == "features" and "features.2" in names and "classifier" not in names


# -- progress and cancel -----------------------------------------------------------------------


class CountingNet(torch.nn.Module):
    """A wrapper that counts completed forward passes (and the inputs they carried)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.passes = 0
        self.inputs = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(x)
        self.passes += 1
        self.inputs += int(x.shape[0])
        return out


def test_score_cam_reports_progress_before_its_masked_passes(
    cnn: LoadedModel, slide: ArraySource
) -> None:
    counting = CountingNet(cnn.module).eval()
    model = LoadedModel(
        card=cnn.card,
        module=counting,
        weights_path=cnn.weights_path,
        sha256=cnn.sha256,
        kind="eager",
        device=cnn.device,
    )
    seen: list[tuple[int, int, int]] = []
    result = explain_patch(
        slide,
        model,
        200,
        150,
        CamRequest(method="scorecam", layer="inner.features.2", masked_batch=16),
        progress=lambda d, t: seen.append((d, t, counting.inputs)),
    )
    channels = result.provenance["settings"]["score_cam_channels"]
    assert channels == 128
    total = 1 + channels  # scoring the patch, then one masked pass per channel
    assert seen[0] == (0, total, 0)  # reported before any full pass (a probe stops early)
    assert seen[-1][:2] == (total, total)
    masked = [d for d, _, _ in seen[2:-1]]
    assert masked == list(range(1 + 16, total + 1, 16))  # after every batch of 16
    assert counting.inputs >= channels


class CatTwice(torch.nn.Module):
    """A block whose output has twice its convolution's channels."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return torch.cat([y, y.flip(1)], dim=1)


def test_score_cam_corrects_a_wrong_channel_count() -> None:
    from inference.explain.layers import guess_channels

    model = DarknessModel()
    torch.manual_seed(0)
    model.module = torch.nn.Sequential()
    model.module.add_module("features", CatTwice())
    model.module.add_module("pool", torch.nn.AdaptiveAvgPool2d(1))
    model.module.add_module("flat", torch.nn.Flatten())
    model.module.add_module("head", torch.nn.Linear(8, 2))
    model.module.eval()
    assert guess_channels(model.module.features) == 4  # read off the conv: wrong here
    source = ArraySource(two_tone(), mpp=0.5)
    seen: list[tuple[int, int]] = []
    explain_patch(
        source,
        model,
        10,
        10,
        CamRequest(method="scorecam", masked_batch=2),
        progress=lambda d, t: seen.append((d, t)),
    )
    assert seen[:2] == [(0, 1 + 4), (0, 1 + 8)]  # the guess at once, then the truth
    assert seen[-1] == (9, 9) and len(seen) == 2 + 1 + 4 + 1


def test_cancel_stops_score_cam_between_batches(cnn: LoadedModel, slide: ArraySource) -> None:
    cancel = threading.Event()
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if done >= 1 + 32:  # two batches of masked inputs done
            cancel.set()

    with pytest.raises(ExplainCancelled):
        explain_patch(
            slide,
            cnn,
            200,
            150,
            CamRequest(method="scorecam", masked_batch=16),
            progress=progress,
            cancel=cancel,
        )
    assert max(seen) == 1 + 32  # nothing ran after the cancel


def test_cancel_from_another_thread(cnn: LoadedModel, slide: ArraySource) -> None:
    cancel = threading.Event()
    started = threading.Event()
    outcome: list[BaseException | None] = []

    def work() -> None:
        try:
            explain_region(
                slide,
                cnn,
                Rect(0, 0, 512, 384),
                CamRequest(method="scorecam", masked_batch=4),
                progress=lambda d, t: started.set(),
                cancel=cancel,
            )
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    assert started.wait(10)
    cancel.set()
    thread.join(10)
    assert not thread.is_alive() and isinstance(outcome[0], ExplainCancelled)


class MemoryCappedNet(torch.nn.Module):
    """Raises torch's out-of-memory error for batches above ``cap`` inputs."""

    def __init__(self, inner: torch.nn.Module, cap: int) -> None:
        super().__init__()
        self.inner = inner
        self.cap = cap
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > self.cap:
            raise torch.OutOfMemoryError(f"test: a batch of {x.shape[0]} does not fit")
        self.sizes.append(int(x.shape[0]))
        out: torch.Tensor = self.inner(x)
        return out


def test_score_cam_halves_its_batch_when_memory_runs_out(
    cnn: LoadedModel, slide: ArraySource
) -> None:
    reference = explain_patch(slide, cnn, 200, 150, CamRequest(method="scorecam"))
    capped = MemoryCappedNet(cnn.module, cap=20).eval()
    model = LoadedModel(cnn.card, capped, cnn.weights_path, cnn.sha256, "eager", cnn.device)
    result = explain_patch(
        slide,
        model,
        200,
        150,
        CamRequest(method="scorecam", layer="inner.features.2", masked_batch=64),
    )
    assert max(capped.sizes) == 16  # 64 -> 32 -> 16, then it stays at 16
    np.testing.assert_allclose(result.raw, reference.raw, rtol=1e-4, atol=1e-6)
    stuck = MemoryCappedNet(cnn.module, cap=0).eval()
    model = LoadedModel(cnn.card, stuck, cnn.weights_path, cnn.sha256, "eager", cnn.device)
    with pytest.raises(ExplainError, match="out of memory"):
        explain_patch(slide, model, 200, 150, CamRequest(method="saliency"))


# -- classes and layers ------------------------------------------------------------------------


def test_class_selection(cnn: LoadedModel, slide: ArraySource) -> None:
    default = explain_patch(slide, cnn, 200, 150)
    predicted = int(np.argmax(default.patch_scores[0]))
    assert default.class_index == predicted
    assert default.provenance["class_from"] == "predicted"
    other = 1 - predicted
    by_index = explain_patch(slide, cnn, 200, 150, CamRequest(target=other))
    by_name = explain_patch(
        slide, cnn, 200, 150, CamRequest(target=cnn.card.class_names[other].upper())
    )
    assert by_index.class_index == by_name.class_index == other
    assert by_name.class_name == cnn.card.class_names[other]
    np.testing.assert_array_equal(by_index.raw, by_name.raw)
    assert not np.allclose(by_index.raw, default.raw)  # another class, another map
    with pytest.raises(ExplainError, match=r"unknown class 'stroma'.*0=benign, 1=tumour"):
        explain_patch(slide, cnn, 200, 150, CamRequest(target="stroma"))
    with pytest.raises(ExplainError, match=r"class index 5 is out of range"):
        explain_patch(slide, cnn, 200, 150, CamRequest(target=5))


def test_layer_override_and_bad_layer(cnn: LoadedModel, slide: ArraySource) -> None:
    coarse = explain_patch(slide, cnn, 200, 150)
    fine = explain_patch(slide, cnn, 200, 150, CamRequest(layer="features.0"))
    assert fine.provenance["layer"] == "features.0" and coarse.provenance["layer"] == "features.2"
    assert not np.allclose(fine.normalised(), coarse.normalised(), atol=0.05)
    with pytest.raises(LayerNotFoundError, match=r"no layer 'feature\.2'.*features\.2"):
        explain_patch(slide, cnn, 200, 150, CamRequest(layer="feature.2"))
    with pytest.raises(ExplainError, match="unknown explanation method 'gradcam3'"):
        explain_patch(slide, cnn, 200, 150, CamRequest(method="gradcam3"))
    assert method_spec("Grad-CAM++").name == "gradcam++"
    assert method_spec("Score_CAM").name == "scorecam"


# -- segmentation ------------------------------------------------------------------------------


def test_segmentation_target_sums_a_class_over_a_mask() -> None:
    output = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(2, 4, 4)
    mask = np.zeros((4, 4), bool)
    mask[:2, :] = True
    assert float(SegmentationTarget(1)(output)) == float(output[1].sum())
    assert float(SegmentationTarget(1, mask)(output)) == float(output[1, :2].sum())
    big = np.zeros((8, 8), bool)
    big[:4] = True  # at twice the resolution: resized to the output's
    assert float(SegmentationTarget(1, big)(output)) == float(output[1, :2].sum())
    with pytest.raises(ExplainError):
        ClassTarget(0)(output)


def test_segmentation_model_explains_a_class_over_a_region(tmp_path: Path) -> None:
    folder = model_folder(
        tmp_path / "unet",
        architecture="unet_small",
        task="segmentation",
        patch=32,
        class_names=("other", "tumour"),
    )
    model = load_model(folder)
    assert model.cam_target_layer == "dec1"
    source = ArraySource(tissue_image(256, 192, seed=4), mpp=0.5)
    rect = Rect(32, 16, 150, 100)
    for method in ("gradcam", "hirescam", "scorecam", "saliency"):
        result = explain_region(source, model, rect, CamRequest(method=method, target="tumour"))
        assert result.class_name == "tumour"
        assert result.raw.shape == (50, 75)  # the region at 2 level-0 px per CAM px
        assert np.isfinite(result.raw).all() and result.raw.min() >= 0
        assert sum(result.scores.values()) == pytest.approx(1.0, abs=1e-5)
        assert "over the region's pixels" in result.provenance["target"]


# -- import rule -------------------------------------------------------------------------------


def test_importing_the_explain_modules_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import inference.explain.service, inference.explain.methods, inference.cli.explain\n"
        "import inference.explain.pointing, inference.bench.cam, inference.bench.pointing\n"
        "import inference.explain.cam_runners, inference.explain.hook_free\n"
        "import inference.explain.runners, inference.explain.planning\n"
        "import inference.explain.stitching, inference.explain.scoring\n"
        "import inference.engine.runner, inference.engine.device, inference.engine.forward\n"
        "heavy = [m for m in ('torch', 'torchvision', 'pytorch_grad_cam') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_white_glass_is_background_for_the_darkness_model() -> None:
    """The helper images are what the tests above assume (tissue, not glass)."""
    from inference.engine.tissue import background_rule

    img = two_tone()
    assert not background_rule(img).any()
    assert background_rule(np.full((4, 4, 3), WHITE, np.uint8)).all()

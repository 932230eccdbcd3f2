"""Trust by form: a ``.pt2`` is a program (loading it can run code: shown here with a
crafted archive), so it needs trust like TorchScript; ONNX is data for ONNX Runtime.
Refusals and broken files get a message naming the file and the cause."""

from __future__ import annotations

import io
import json
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch

from inference.cli.main import main
from inference.models import ModelLoadError, TrustStore, UntrustedModelError, load_model
from inference.models.architectures import build_architecture
from inference.models.exported import export_program, save_program
from tests.inference.byo_helpers import card, save_state, uint8_patches, write_folder

torch.set_num_threads(1)


class MarkerPayload:
    """Unpickling this makes the folder ``marker``: a harmless stand-in for code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


def _program_file(path: Path) -> torch.nn.Module:
    torch.manual_seed(0)
    module = build_architecture("small_cnn", 2).eval()
    save_program(export_program(module, torch.zeros(2, 3, 64, 64)), path)
    return module


def _craft(clean: Path, crafted: Path, marker: Path) -> None:
    """``clean`` with its sample inputs replaced by a pickle that creates ``marker``."""
    buffer = io.BytesIO()
    torch.save((MarkerPayload(marker),), buffer)
    with zipfile.ZipFile(clean) as src, zipfile.ZipFile(crafted, "w") as out:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("data/sample_inputs/model.pt"):
                data = buffer.getvalue()
            out.writestr(info, data)


def test_a_pt2_can_run_code_so_it_needs_trust(tmp_path: Path) -> None:
    clean = tmp_path / "clean.pt2"
    _program_file(clean)
    folder = write_folder(tmp_path / "m", card("small_cnn"), None)
    marker = tmp_path / "ran"
    _craft(clean, folder / "model.pt2", marker)
    store = TrustStore(tmp_path / "trust.json")
    with pytest.raises(UntrustedModelError) as info:
        load_model(folder, trust_store=store)
    message = str(info.value)
    assert str(folder / "model.pt2") in message and "--trust" in message
    assert "torch.export program (.pt2) can run code" in message
    assert info.value.kind == "pt2" and not marker.exists()
    # why: torch.export.load itself runs the archive's pickle (it falls back to
    # weights_only=False for the sample inputs, and logs that it did)
    quiet = logging.getLogger("torch._export")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        torch.export.load(str(folder / "model.pt2"))
    finally:
        quiet.setLevel(level)
    assert marker.is_dir()


def test_an_untrusted_pt2_beside_eager_weights_is_skipped(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "m", card("small_cnn"), None)
    module = _program_file(folder / "model.pt2")
    save_state(module, folder / "model.safetensors")
    store = TrustStore(tmp_path / "trust.json")
    model = load_model(folder, trust_store=store)
    assert model.kind == "eager"
    assert "pt2: a program you have not trusted" in model.backend["reason"]
    trusted = load_model(folder, trust=True, trust_store=store, backend="pt2")
    rgb = uint8_patches(3, 64)
    with torch.inference_mode():
        got = trusted.module(trusted.to_model_input(rgb))
        expected = model.module(model.to_model_input(rgb))
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    assert store.is_trusted(trusted.sha256)


def test_onnx_is_data_and_loads_without_trust(tmp_path: Path) -> None:
    from inference.models.convert import convert_model

    source = write_folder(tmp_path / "src", card("small_cnn"), build_architecture("small_cnn", 2))
    convert_model(load_model(source), "onnx", tmp_path / "onnx", alone=True)
    store = TrustStore(tmp_path / "trust.json")
    model = load_model(tmp_path / "onnx", trust_store=store)
    assert model.kind == "onnx" and store.trusted() == {}


def test_broken_files_name_the_file_and_cause(tmp_path: Path) -> None:
    store = TrustStore(tmp_path / "trust.json")
    pt2 = write_folder(tmp_path / "pt2", card("small_cnn"), None)
    (pt2 / "model.pt2").write_bytes(b"PK not really a zip")
    with pytest.raises(ModelLoadError, match=r"model\.pt2: not a loadable torch\.export program"):
        load_model(pt2, trust=True, trust_store=store)
    onnx = write_folder(tmp_path / "onnx", card("small_cnn"), None)
    (onnx / "model.onnx").write_bytes(b"\x08\x07garbage")
    with pytest.raises(ModelLoadError, match=r"model\.onnx: ONNX Runtime cannot load this model"):
        load_model(onnx)


def test_convert_torchscript_to_pt2_needs_trust(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import warnings

    folder = write_folder(tmp_path / "zoo", card("zoo_net_v4"), None)
    torch.manual_seed(3)
    module = build_architecture("small_cnn", 2).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(module).save(str(folder / "torchscript_model.pt"))
    out = tmp_path / "migrated"
    assert main(["models", "convert", str(folder), "--to", "pt2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "torchscript_model.pt: refused" in err and "--trust" in err and not out.exists()
    args = ["models", "convert", str(folder), "--to", "pt2", "--out", str(out), "--trust"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "converted: zoo (torchscript) to pt2" in printed
    assert json.loads((out / "config.json").read_text())["architecture"] == "zoo_net_v4"
    migrated = load_model(out)  # written by SlideLens, so already trusted
    assert migrated.kind == "pt2"
    rgb = uint8_patches(4, 64)
    with torch.inference_mode():
        got = migrated.module(migrated.to_model_input(rgb))
        expected = module(migrated.to_model_input(rgb))
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)

"""Model cards: a good card, WSInfer zoo cards as they are, and bad cards with messages that
name the field and the problem.  Also the registry and ``slidelens models``.  No torch."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from inference.cli.models import add_parser
from inference.models.card import ModelCardError, load_card, validate_card_data
from inference.models.registry import (
    ModelNotFoundError,
    bundled_models_dir,
    list_models,
    resolve_model,
    user_models_dir,
)

ROOT = Path(__file__).resolve().parents[2]

WSINFER_ZOO_CARD: dict[str, Any] = {
    "spec_version": "1.0",
    "architecture": "resnet34",
    "num_classes": 2,
    "class_names": ["notumor", "tumor"],
    "patch_size_pixels": 350,
    "spacing_um_px": 0.25,
    "transform": [
        {"name": "Resize", "arguments": {"size": 224}},
        {"name": "ToTensor"},
        {
            "name": "Normalize",
            "arguments": {"mean": [0.7238, 0.5716, 0.6779], "std": [0.112, 0.1459, 0.1089]},
        },
    ],
}

GOOD_CARD: dict[str, Any] = {
    **copy.deepcopy(WSINFER_ZOO_CARD),
    "architecture": "small_cnn",
    "class_names": ["other", "tumour"],
    "slidelens": {
        "task": "classification",
        "activation": "softmax",
        "cam_target_layer": "features.2",
        "description": "A test card.",
        "licence": "CC0-1.0",
        "intended_use": "Tests only.",
        "metrics": {"auc": 0.97, "accuracy": 0.9},
        "training": {"seeds": [1, 2]},
    },
}


def write_card(folder: Path, data: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = data if isinstance(data, str) else json.dumps(data)
    (folder / "config.json").write_text(text, encoding="utf-8")
    return folder


def with_changes(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def test_good_card_reads_every_field(tmp_path: Path) -> None:
    card = load_card(write_card(tmp_path / "good-model", GOOD_CARD))
    assert card.name == "good-model"
    assert card.architecture == "small_cnn"
    assert card.num_classes == 2
    assert card.class_names == ("other", "tumour")
    assert card.patch_size_pixels == 350
    assert card.spacing_um_px == 0.25
    assert card.input_size == 224
    assert card.mean == pytest.approx((0.7238, 0.5716, 0.6779))
    assert card.std == pytest.approx((0.112, 0.1459, 0.1089))
    assert card.task == "classification"
    assert card.activation == "softmax"
    assert card.cam_target_layer == "features.2"
    assert card.licence == "CC0-1.0"
    assert dict(card.metrics) == {"auc": 0.97, "accuracy": 0.9}
    assert card.training == {"seeds": [1, 2]}
    assert card.raw["architecture"] == "small_cnn"
    assert hash(card)  # usable as a dict key despite the mapping fields


def test_wsinfer_zoo_card_without_slidelens_object_is_valid(tmp_path: Path) -> None:
    card = load_card(write_card(tmp_path / "breast-tumor-resnet34", WSINFER_ZOO_CARD))
    assert card.task == "classification"
    assert card.activation == "softmax"
    assert card.cam_target_layer is None
    assert card.input_size == 224
    assert card.metrics == {}


def test_defaults_without_resize_or_normalize_and_sigmoid_for_one_class(tmp_path: Path) -> None:
    data = with_changes(
        WSINFER_ZOO_CARD,
        architecture="unet_small",
        num_classes=1,
        class_names=["tumour"],
        patch_size_pixels=256,
        transform=[{"name": "ToTensor"}],
        slidelens={"task": "segmentation"},
    )
    card = load_card(write_card(tmp_path / "seg", data))
    assert card.input_size == 256
    assert card.mean == (0.0, 0.0, 0.0)
    assert card.std == (1.0, 1.0, 1.0)
    assert card.activation == "sigmoid"
    assert card.task == "segmentation"


def test_unknown_architecture_is_allowed_beside_a_torchscript_program(tmp_path: Path) -> None:
    folder = write_card(
        tmp_path / "zoo", with_changes(WSINFER_ZOO_CARD, architecture="inception_v4nobn")
    )
    with pytest.raises(ModelCardError, match="architecture"):
        load_card(folder)
    (folder / "torchscript_model.pt").write_bytes(b"not loaded by load_card")
    assert load_card(folder).architecture == "inception_v4nobn"


BAD_CARDS: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "unknown architecture",
        with_changes(GOOD_CARD, architecture="resnet9000"),
        "architecture",
        "unknown architecture 'resnet9000'",
    ),
    (
        "class_names length differs from num_classes",
        with_changes(GOOD_CARD, class_names=["a", "b", "c"]),
        "class_names",
        "has 3 names but num_classes is 2",
    ),
    (
        "negative spacing",
        with_changes(GOOD_CARD, spacing_um_px=-1),
        "spacing_um_px",
        "must be a positive number (got -1)",
    ),
    (
        "zero spacing",
        with_changes(GOOD_CARD, spacing_um_px=0),
        "spacing_um_px",
        "must be a positive number (got 0)",
    ),
    (
        "patch size out of range",
        with_changes(GOOD_CARD, patch_size_pixels=8),
        "patch_size_pixels",
        "from 16 to 4096 (got 8)",
    ),
    (
        "patch size not an integer",
        with_changes(GOOD_CARD, patch_size_pixels="224"),
        "patch_size_pixels",
        "(got '224')",
    ),
    (
        "bad transform step name",
        with_changes(
            GOOD_CARD, transform=[{"name": "ToTensor"}, {"name": "RandomFlip", "arguments": {}}]
        ),
        "transform[1].name",
        "must be one of Resize, ToTensor, Normalize (got 'RandomFlip')",
    ),
    (
        "wrong spec_version",
        with_changes(GOOD_CARD, spec_version="2.0"),
        "spec_version",
        'must be "1.0"',
    ),
    (
        "missing required field",
        with_changes(GOOD_CARD, spacing_um_px=None),
        "spacing_um_px",
        "is required but missing",
    ),
    (
        "task not in the enum",
        with_changes(GOOD_CARD, slidelens={"task": "detection"}),
        "slidelens.task",
        'must be "classification" or "segmentation" (got \'detection\')',
    ),
    (
        "unknown key in the slidelens object",
        with_changes(GOOD_CARD, slidelens={"licnce": "MIT"}),
        "slidelens.licnce",
        "unknown field",
    ),
    (
        "Normalize with two channels",
        with_changes(
            GOOD_CARD,
            transform=[
                {"name": "ToTensor"},
                {"name": "Normalize", "arguments": {"mean": [0.5, 0.5], "std": [0.2, 0.2, 0.2]}},
            ],
        ),
        "transform[1].arguments.mean",
        "three numbers",
    ),
    (
        "Resize without a size",
        with_changes(GOOD_CARD, transform=[{"name": "Resize"}, {"name": "ToTensor"}]),
        "transform[0].arguments",
        "is required but missing",
    ),
    (
        "no ToTensor step",
        with_changes(GOOD_CARD, transform=[{"name": "Resize", "arguments": {"size": 224}}]),
        "transform",
        "needs a ToTensor step",
    ),
    (
        "softmax over one class",
        with_changes(
            GOOD_CARD, num_classes=1, class_names=["tumour"], slidelens={"activation": "softmax"}
        ),
        "slidelens.activation",
        "use 'sigmoid'",
    ),
    (
        "segmentation task on a classifier",
        with_changes(GOOD_CARD, slidelens={"task": "segmentation"}),
        "slidelens.task",
        "is a classification network",
    ),
    (
        "metrics value not a number",
        with_changes(GOOD_CARD, slidelens={"metrics": {"auc": "high"}}),
        "slidelens.metrics.auc",
        "must be a number (got 'high')",
    ),
]


@pytest.mark.parametrize(
    ("data", "field", "problem"),
    [case[1:] for case in BAD_CARDS],
    ids=[case[0] for case in BAD_CARDS],
)
def test_bad_card_message_names_field_and_problem(
    tmp_path: Path, data: dict[str, Any], field: str, problem: str
) -> None:
    folder = write_card(tmp_path / "bad-model", data)
    with pytest.raises(ModelCardError) as info:
        load_card(folder)
    message = str(info.value)
    assert message.startswith(f"{folder / 'config.json'}: ")
    assert f"field '{field}': " in message
    assert problem in message
    assert any(f == field and problem in p for f, p in info.value.problems)


def test_error_message_matches_the_documented_form(tmp_path: Path) -> None:
    folder = write_card(tmp_path / "m", with_changes(GOOD_CARD, spacing_um_px=-1))
    with pytest.raises(ModelCardError) as info:
        load_card(folder)
    assert str(info.value) == (
        f"{folder}/config.json: field 'spacing_um_px': must be a positive number (got -1)"
    )


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    data = with_changes(GOOD_CARD, spec_version="0.9", spacing_um_px=-2, architecture="nope")
    problems = validate_card_data(data)
    assert {f for f, _ in problems} == {"spec_version", "spacing_um_px", "architecture"}


def test_not_json_reports_line_and_column(tmp_path: Path) -> None:
    folder = write_card(tmp_path / "m", '{\n  "spec_version": "1.0",\n  "architecture" "x"\n}')
    with pytest.raises(ModelCardError, match=r"not valid JSON: .* at line 3, column 18"):
        load_card(folder)


@pytest.mark.parametrize(
    ("text", "problem"),
    [("[1, 2]", "must be a JSON object (got an array)"), ("null", "(got null)")],
)
def test_card_must_be_an_object(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ModelCardError, match=re.escape(problem)):
        load_card(write_card(tmp_path / "m", text))


def test_missing_folder_and_missing_config(tmp_path: Path) -> None:
    with pytest.raises(ModelCardError, match="does not exist"):
        load_card(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelCardError, match=r"needs a config\.json"):
        load_card(tmp_path / "empty")


def test_schema_file_is_valid_json_schema() -> None:
    import jsonschema

    schema = json.loads(
        (ROOT / "resources" / "schemas" / "model-card.schema.json").read_text(encoding="utf-8")
    )
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(GOOD_CARD, schema)
    jsonschema.validate(WSINFER_ZOO_CARD, schema)


# --- registry and the ``models`` command ---------------------------------------------------


def test_list_models_lists_bundled_user_and_given_folders_and_keeps_bad_ones(
    tmp_path: Path,
) -> None:
    write_card(user_models_dir() / "user-model", GOOD_CARD)
    write_card(user_models_dir() / "broken", with_changes(GOOD_CARD, num_classes=0))
    extra = write_card(tmp_path / "given", WSINFER_ZOO_CARD)
    entries = list_models(extra=[extra])
    by_name = {e.name: e for e in entries}
    assert by_name["user-model"].source == "user" and by_name["user-model"].ok
    assert by_name["broken"].card is None
    assert "field 'num_classes'" in (by_name["broken"].error or "")
    assert by_name["given"].source == "path" and by_name["given"].ok
    bundled = [e for e in entries if e.source == "bundled"]
    assert all(e.folder.parent == bundled_models_dir() for e in bundled)


def test_resolve_model_by_path_and_by_name_and_clear_error(tmp_path: Path) -> None:
    folder = write_card(tmp_path / "mine", GOOD_CARD)
    assert resolve_model(str(folder)) == folder
    write_card(user_models_dir() / "user-model", GOOD_CARD)
    assert resolve_model("user-model") == user_models_dir() / "user-model"
    with pytest.raises(
        ModelNotFoundError, match=r"no model named 'nope'; available models: .*user-model"
    ):
        resolve_model("nope")
    with pytest.raises(ModelNotFoundError, match="no model folder at"):
        resolve_model(str(tmp_path / "missing"))


def _run_models(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["models", *argv])
    code: int = args.handler(args)
    return code


def test_models_command_prints_cards_and_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_card(tmp_path / "good", GOOD_CARD)
    bad = write_card(tmp_path / "bad", with_changes(GOOD_CARD, spacing_um_px=-1))
    assert _run_models(["--model", str(good)]) == 0
    out = capsys.readouterr().out
    assert "good  [path]" in out
    assert "classes: other, tumour" in out
    assert "patch 350 px at 0.25 um/px" in out
    assert "licence: CC0-1.0" in out
    assert "auc 0.97" in out
    assert _run_models(["--model", str(bad), "--json"]) == 2  # bad input
    listed = json.loads(capsys.readouterr().out)
    entry = next(e for e in listed if e["name"] == "bad")
    assert "must be a positive number (got -1)" in entry["error"]


def test_models_command_is_registered_and_does_not_load_torch() -> None:
    code = (
        "import sys; from inference.cli.models import run_models, add_parser; "
        "import inference.models, inference.models.registry; "
        "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"
    from inference.cli.main import COMMAND_MODULES

    assert "inference.cli.models" in COMMAND_MODULES

"""One plan per model (benchmark/plan/): its fields, its refusals, and that nobody re-derives it."""

import re
import sys
from pathlib import Path

import pytest

from benchmark.config.run_config import RunConfig, resolve_config
from benchmark.errors import UsageError
from benchmark.plan import resolve_plan, resolve_plans
from benchmark.plan.weights import weights_file_note

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "cli"))
from cli_helpers import one_line_error, run_cli  # noqa: E402

ZERO_SHOT = "zeroshot_clip_vit_base_patch32"  # runs at its preset's 224 px


def plan_of(name: str, **overrides):
    return resolve_plan(RunConfig(models=[name], **overrides), name)


@pytest.mark.parametrize(
    "name, kind, size, preprocess, source, head, tune",
    [
        ("simple_cnn", "scratch", 128, "raw", "none", "online", "none"),
        ("efficientnet_lite0", "trained_backbone", 224, "raw", "packaged", "bank", "bank"),
        ("mobilenet_v2", "trained_backbone", 224, "tf", "download", "bank", "bank"),
        (ZERO_SHOT, "zero_shot", 224, "raw", "download", "none", "none"),
        ("late_fusion_mobilenet_v2", "late_fusion", 224, "tf", "none", "none", "none"),
        ("fusion_mobilenet_v2", "fusion", 224, "tf", "download", "online", "online"),
        ("hub_dinov2_base", "trained_backbone", 224, "raw", "download", "bank", "online"),
    ],
)
def test_plan_fields_of_each_kind(name, kind, size, preprocess, source, head, tune):
    plan = plan_of(name)
    assert (plan.kind, plan.image_size, plan.preprocess) == (kind, size, preprocess)
    assert plan.weight_source == source
    assert (plan.head_features, plan.fine_tune_features) == (head, tune)
    assert plan.trains is (kind not in ("zero_shot", "late_fusion"))


def test_flags_change_what_the_plan_says():
    assert plan_of("mobilenet_v2", image_size=160).image_size == 160
    assert plan_of("mobilenet_v2", weights="none").weight_source == "none"
    assert plan_of("mobilenet_v2", weights="none").from_scratch
    assert plan_of("mobilenet_v2", fine_tune_layers=0).fine_tune_features == "none"
    assert plan_of("mobilenet_v2").fine_tune_layers == 50  # the entry's own depth
    assert plan_of("simple_cnn", simple_cnn={"blocks": 3}).simple_cnn.blocks == 3
    assert plan_of("mobilenet_v2").simple_cnn is None  # only the network that reads the knobs


def test_the_grid_plans_late_fusion_components_first():
    assert list(resolve_plans(RunConfig(models=["late_fusion_mobilenet_v2"]))) == [
        "mobilenet_v2",
        "text_bert",
        "late_fusion_mobilenet_v2",
    ]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"models": ["xception"], "image_size": 40},
            "--image-size 40 is below xception's minimum of 71 px",
        ),
        (
            {"models": ["hub_vit_base_patch16_224_imagenet"], "image_size": 256},
            "hub_vit_base_patch16_224_imagenet runs at a fixed 224 px",
        ),
        (
            {"models": ["simple_cnn", ZERO_SHOT], "image_size": 160},
            "--image-size 160 cannot apply to zero-shot",
        ),
        (
            {"models": ["text_bert"], "head_features": "cached"},
            "--head-features cached: text_bert has a text input",
        ),
        (
            {"models": ["mobilenet_v2"], "weights": "none", "head_features": "cached"},
            "trains from scratch here",
        ),
        (
            {"models": ["fusion_mobilenet_v2"], "fine_tune_features": "bank"},
            "--fine-tune-features bank: fusion_",
        ),
        (
            {"models": ["mobilenet_v2"], "progressive_sizes": [64]},
            "--progressive-sizes applies to the networks",
        ),
        (
            {"models": ["simple_cnn"], "weights": "no/such.weights.h5"},
            "--weights file 'no/such.weights.h5' does not",
        ),
    ],
)
def test_each_refusal_is_one_line_naming_the_flag(overrides, message):
    with pytest.raises(UsageError) as caught:
        resolve_plans(RunConfig(**overrides))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_weights_file_given_only_to_models_that_ignore_it_is_refused_else_named(tmp_path):
    weights = tmp_path / "backbone.weights.h5"
    weights.write_bytes(b"")
    for ignoring in ("simple_cnn", ZERO_SHOT, "text_bert", "hub_dinov2_base"):
        with pytest.raises(UsageError, match="no model of the grid reads a weights file"):
            resolve_plans(RunConfig(models=[ignoring], weights=str(weights)))
    plans = resolve_plans(RunConfig(models=["simple_cnn", "mobilenet_v2"], weights=str(weights)))
    assert plans["mobilenet_v2"].weight_source == "file"
    note = weights_file_note(plans, str(weights))
    assert note.endswith("read by mobilenet_v2 only; not by simple_cnn")


def test_an_image_size_within_the_limits_passes():
    resolve_plans(RunConfig(models=["xception"], image_size=71))
    resolve_plans(RunConfig(models=["hub_dinov2_base"], image_size=252))  # resizable
    resolve_plans(resolve_config(None, None, {"models": [ZERO_SHOT], "image_size": 224}))


# Where the side a model is fed at may still be computed: the plan package, and the registry and
# builders of `models/` (which build standalone for tests).
SIZE_ALLOWED = {"benchmark/plan/model_plan.py"}
SIZE_PATTERN = re.compile(r"image_size\s+or\b|\.input_size\b")


def test_no_module_of_benchmark_but_the_plan_re_derives_the_image_size():
    offenders = []
    for path in sorted((ROOT / "benchmark").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in SIZE_ALLOWED or rel == "benchmark/listing.py":  # it prints the entry's own size
            continue
        offenders += [
            f"{rel}:{n}"
            for n, line in enumerate(path.read_text().splitlines(), 1)
            if SIZE_PATTERN.search(line)
        ]
    assert not offenders, offenders


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--models", "xception", "--image-size", "40"],
            "--image-size 40 is below xception's minimum of 71 px",
        ),
        (
            ["--models", "text_bert", "--head-features", "cached"],
            "--head-features cached: text_bert has a text input",
        ),
        (
            ["--models", "fusion_mobilenet_v2", "--fine-tune-features", "bank"],
            "--fine-tune-features bank: fusion_mobilenet_v2 has no frozen",
        ),
    ],
)
def test_dry_run_refuses_in_one_line_before_any_cell(tmp_path, flags, message):
    done = run_cli(*flags, "--dry-run", "--output", str(tmp_path / "run"), timeout=300)
    assert message in one_line_error(done)
    assert not (tmp_path / "run").exists()

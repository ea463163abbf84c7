"""Grids refused before they train (benchmark/run/preflight.py); each passed --dry-run once."""

import sys
from pathlib import Path

import pytest

from benchmark.config.run_config import resolve_config
from benchmark.errors import UsageError
from benchmark.plan import takes_weights_file
from benchmark.run.preflight import check_inputs

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "cli"))
from cli_helpers import one_line_error, run_cli  # noqa: E402

ZERO_SHOT = "zeroshot_clip_vit_base_patch32"  # runs at its preset's 224 px


def checked(**overrides) -> None:
    check_inputs(resolve_config(None, None, overrides))


def test_zero_shot_rows_refuse_another_image_size():
    refusal = rf"--image-size 160 cannot apply to zero-shot rows.*{ZERO_SHOT} \(224 px\)"
    with pytest.raises(UsageError, match=refusal):
        checked(models=["simple_cnn", ZERO_SHOT], image_size=160)
    checked(models=[ZERO_SHOT], image_size=224)  # its own side
    checked(models=["simple_cnn", "zeroshot_*"])


def test_a_weights_file_that_does_not_exist_is_refused(tmp_path):
    with pytest.raises(UsageError, match="--weights file '.*missing.weights.h5' does not exist"):
        checked(models=["mobilenet_v2"], weights=str(tmp_path / "missing.weights.h5"))


def test_a_weights_folder_or_symlink_loop_is_named_as_what_it_is(tmp_path):
    from models import ModelError
    from models.weights import keras_weights_argument

    (tmp_path / "a.pth").symlink_to(tmp_path / "b.pth")
    (tmp_path / "b.pth").symlink_to(tmp_path / "a.pth")
    (tmp_path / "gone.pth").symlink_to(tmp_path / "nowhere.pth")
    cases = {
        tmp_path: "is a folder, not a file",
        tmp_path / "a.pth": "is a symbolic link that loops \\(.*b.pth'\\)",
        tmp_path / "gone.pth": "is a symbolic link to .*nowhere.pth', which does not exist",
    }
    for path, problem in cases.items():
        with pytest.raises(UsageError, match=f"--weights file '{path}' {problem}; pass imagenet"):
            checked(models=["efficientnet_lite0"], weights=str(path))
        with pytest.raises(ModelError, match=f"--weights file '{path}' {problem}"):
            keras_weights_argument(str(path))


def test_a_weights_file_no_model_reads_is_refused_and_models_that_ignore_it_named(tmp_path, capsys):
    weights = tmp_path / "backbone.weights.h5"
    weights.write_bytes(b"")
    with pytest.raises(UsageError, match="no model of the grid reads a weights file"):
        checked(models=["simple_cnn"], weights=str(weights))
    checked(models=["simple_cnn", "mobilenet_v2"], weights=str(weights))
    note = f"note: --weights {str(weights)!r} is read by mobilenet_v2 only; not by simple_cnn"
    assert note in capsys.readouterr().err
    for keyword in ("imagenet", "none"):
        checked(models=["simple_cnn"], weights=keyword)


@pytest.mark.parametrize(
    "name, reads",
    [
        ("mobilenet_v2", True),
        ("fusion_mobilenet_v2", True),
        ("simple_cnn", False),
        ("text_bert", False),
        ("late_fusion_mobilenet_v2", False),
        (ZERO_SHOT, False),
        ("hub_dinov2_base", False),
    ],
)
def test_which_models_read_a_weights_file(name, reads):
    assert takes_weights_file(name) is reads


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--models", f"simple_cnn,{ZERO_SHOT}", "--image-size", "96"],
            "--image-size 96 cannot apply to zero-shot",
        ),
        (
            ["--models", "simple_cnn", "--weights", "no/such.weights.h5"],
            "--weights file 'no/such.weights.h5' does not",
        ),
    ],
)
def test_dry_run_refuses_in_one_line(tmp_path, flags, message):
    done = run_cli(*flags, "--dry-run", "--output", str(tmp_path / "run"), timeout=300)
    assert message in one_line_error(done)
    assert not (tmp_path / "run").exists()

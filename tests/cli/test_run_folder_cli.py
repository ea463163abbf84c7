"""What a run writes, and when (issue 39): nothing before every check has passed, nothing at all
on --dry-run. Each test failed before: a refused checkpoint or `--cell 99` left config.yaml and
splits.csv in a new --output (a rerun there then demanded --force), `--cell 99 --dry-run` exited
0, and a dry run wrote the ported Lite weights into the Keras cache."""

import os

import pytest
from cli_helpers import TINY_FLAGS, make_images, one_line_error, run_cli

from models.efficientnet_lite import VARIANTS, packaged_checkpoint

LITE0 = ("--models", "efficientnet_lite0", "--alphas", "0", "--image-size", "32", "--quiet")


def files_under(path) -> list:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_images(tmp_path_factory.mktemp("cli") / "data", per_class=4, size=32)


@pytest.mark.parametrize("dry_run", [(), ("--dry-run",)])
def test_a_cell_out_of_range_is_refused_and_writes_nothing(tmp_path, data, dry_run):
    out = tmp_path / "run"
    done = run_cli(*TINY_FLAGS, "--data", str(data), "--output", str(out), "--cell", "99", *dry_run)
    assert "--cell 99 is out of range; this grid has cells 0..1" in one_line_error(done)
    assert not out.exists()


def test_a_refused_checkpoint_writes_nothing(tmp_path, data):
    out = tmp_path / "run"
    lite1 = packaged_checkpoint(VARIANTS[1])  # a real checkpoint of another variant
    done = run_cli(*LITE0, "--data", str(data), "--output", str(out), "--weights", str(lite1))
    line = one_line_error(done)
    assert "checkpoint" in line and "does not fit efficientnet_lite" in line
    assert not out.exists()


def test_a_dry_run_writes_nothing_anywhere(tmp_path, data):
    keras_home = tmp_path / "keras"
    out = tmp_path / "run"
    done = run_cli(
        *LITE0,
        "--data",
        str(data),
        "--output",
        str(out),
        "--dry-run",
        env={**os.environ, "KERAS_HOME": str(keras_home)},
    )
    assert done.returncode == 0, done.stderr
    assert "efficientnet_lite0" in done.stdout
    # The Lite checkpoint was ported and checked, but not cached (Keras may write keras.json)
    assert not out.exists() and files_under(keras_home / "models") == []

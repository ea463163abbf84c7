"""`adapt` from the command line: the curve's files, and bad input refused before OUTPUT exists."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import CLASSES, TINY_FLAGS, make_images, one_line_error, run_cli
from PIL import Image


def make_shifted(root: Path, per_class: int = 5, size: int = 36) -> Path:
    """Like `make_images`, other pixels, with a warm colour cast: the user's own camera."""
    rng = np.random.default_rng(1)
    for k, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 70, (size, size, 3)) + np.array(
                [170 if c == k else 30 for c in range(3)]
            )
            pixels = pixels + np.array([60, 40, 0])  # the shift
            Image.fromarray(pixels.clip(0, 255).astype("uint8")).save(
                root / name / f"{name}{i}.png"
            )
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapt")
    return make_images(root / "shop", per_class=8), make_shifted(root / "mine"), root


def adapt(source: Path, target: Path, output: Path, *extra: str):
    return run_cli(
        "adapt",
        *TINY_FLAGS,
        "--alphas",
        "0",
        "--no-profile",
        "--curve",
        "finetune",
        "--data",
        str(source),
        "--target",
        str(target),
        "--output",
        str(output),
        *extra,
    )


def test_adapt_writes_one_row_per_k_and_the_plot(folders):
    source, target, root = folders
    output = root / "curve"
    done = adapt(source, target, output, "--shots", "0,2", "--target-weight", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    curve = pd.read_csv(output / "adaptation.csv")
    assert list(curve["shots"]) == [0, 2] and set(curve["model"]) == {"simple_cnn"}
    assert list(curve["n_target_test"]) == [9, 9]  # 5 per class, 2 drawn: the same 3 per class
    assert curve["target_test_accuracy"].between(0, 1).all()
    assert (curve["target_ci_low"] <= curve["target_test_accuracy"]).all()
    assert (output / "adaptation.png").stat().st_size > 0
    splits = {k: pd.read_csv(output / f"shots{k}" / "splits.csv") for k in (0, 2)}
    trained = {
        k: set(t.loc[(t["source"] == "mine") & (t["split"] == "train"), "path"])
        for k, t in splits.items()
    }
    assert trained[0] == set() and len(trained[2]) == 6
    assert splits[2]["path"].isin(trained[2]).sum() == 12  # --target-weight 2: each listed twice
    tested = [
        set(t.loc[(t["source"] == "mine") & (t["split"] == "test"), "path"])
        for t in splits.values()
    ]
    assert tested[0] == tested[1] and not tested[0] & trained[2]
    board = pd.read_csv(output / "shots2" / "leaderboard.csv")
    assert "test_accuracy_on_mine" in board.columns


@pytest.mark.parametrize(
    "shots, names",
    [("", "--shots"), ("2,x", "--shots"), ("-1", "--shots"), ("0,5", "class 'glass'")],
)
def test_bad_shots_are_refused_before_output_exists(folders, shots, names):
    source, target, root = folders
    output = root / f"refused{abs(hash(shots))}"
    line = one_line_error(adapt(source, target, output, "--shots", shots))
    assert names in line
    assert not output.exists()


def test_a_target_sharing_no_class_is_refused(folders, tmp_path):
    source, _, _ = folders
    other = tmp_path / "other"
    for name in ("bottle", "can"):
        (other / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (20, 20), (i * 40, 90, 30)).save(other / name / f"{i}.png")
    line = one_line_error(adapt(source, other, tmp_path / "out", "--shots", "0,1"))
    assert "--target 'other'" in line and "shares no class" in line and "--label-map" in line
    assert not (tmp_path / "out").exists()


def test_a_target_weight_below_one_is_refused(folders, tmp_path):
    source, target, _ = folders
    line = one_line_error(adapt(source, target, tmp_path / "out", "--target-weight", "0"))
    assert "--target-weight 0" in line
    assert not (tmp_path / "out").exists()


def test_another_draw_into_the_same_output_is_refused(folders):
    source, target, root = folders
    output = root / "curve"  # written by test_adapt_writes_one_row_per_k_and_the_plot
    if not (output / "adaptation.csv").is_file():
        pytest.skip("needs the curve of the first test")
    before = (output / "draw.csv").read_bytes()
    # another seed draws other photos (another --shots list alone keeps the draw: the cut into pool
    # and test set does not depend on k)
    line = one_line_error(
        adapt(source, target, output, "--shots", "0,2", "--target-weight", "2", "--split-seed", "1")
    )
    assert "shots0.csv holds another split" in line
    assert (output / "draw.csv").read_bytes() == before

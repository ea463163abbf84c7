"""`adapt --curve probe`: frozen features built once for every image, a head per k, the gap
columns; and its bad input refused before OUTPUT exists."""

import pandas as pd
import pytest
from cli_helpers import make_images, one_line_error, run_cli
from test_adapt_cli import make_shifted

# A real pretrained backbone at a tiny side: the features cost seconds.
PROBE_FLAGS = (
    "--models",
    "efficientnet_lite0",
    "--image-size",
    "32",
    "--alphas",
    "0",
    "--batch-size",
    "16",
    "--quiet",
)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe")
    return make_images(root / "shop", per_class=8), make_shifted(root / "mine"), root


def adapt(source, target, output, *extra):
    return run_cli(
        "adapt",
        *PROBE_FLAGS,
        "--data",
        str(source),
        "--target",
        str(target),
        "--output",
        str(output),
        *extra,
    )


def test_probe_curve_builds_features_once_and_reuses_them(folders):
    source, target, root = folders
    output = root / "curve"
    first = adapt(source, target, output, "--shots", "0,2")
    assert first.returncode == 0, first.stdout + first.stderr
    stored = {p.name.split("_")[4]: p for p in (output / "features").glob("*.npy")}
    # one file per source, every distinct image once: 3 classes x 8 source + 3 x 5 target photos
    assert set(stored) == {"shop", "mine"} and all(
        "efficientnet_lite0_32px" in p.name for p in stored.values()
    )
    assert "39 images for efficientnet_lite0 at 32 px: computed for mine, shop" in first.stdout
    stamps = {name: p.stat().st_mtime_ns for name, p in stored.items()}
    curve = pd.read_csv(output / "adaptation.csv")
    assert list(curve["shots"]) == [0, 2] and set(curve["curve"]) == {"probe"}
    assert list(curve["n_target_test"]) == [9, 9]  # 5 per class, 2 drawn: the same 3 per class
    assert curve["target_test_accuracy"].between(0, 1).all()
    assert (curve["target_ci_low"] <= curve["target_test_accuracy"]).all()
    assert (curve["target_test_accuracy"] <= curve["target_ci_high"]).all()
    assert curve["in_domain_accuracy"].between(0, 1).all()
    assert (curve["k0_target_accuracy"] == curve["target_test_accuracy"].iloc[0]).all()
    assert set(curve["target_weighting"]) == {"share 0.5"}
    assert (output / "adaptation.png").stat().st_size > 0
    assert not (output / "shots0").exists()  # no run folder per k

    again = adapt(source, target, output, "--shots", "0,1,2", "--target-weight", "3")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "computed" not in again.stdout and "all read from the folder" in again.stdout
    curve = pd.read_csv(output / "adaptation.csv")
    assert list(curve["shots"]) == [0, 1, 2] and set(curve["target_weighting"]) == {"copies 3"}

    other = make_shifted(root / "yours")  # another target: only its own features are computed
    third = adapt(source, other, output, "--shots", "0,2")
    assert third.returncode == 0, third.stdout + third.stderr
    assert "computed for yours" in third.stdout and "shop" not in third.stdout
    assert {n: p.stat().st_mtime_ns for n, p in stored.items()} == stamps


@pytest.mark.parametrize(
    "extra, names",
    [
        (("--shots", "0,5"), "class 'glass'"),
        (("--shots", "0,1", "--target-share", "0"), "--target-share 0"),
        (("--shots", "0,1", "--weighting", "share", "--target-weight", "2"), "--target-weight"),
        (("--shots", "0,1", "--curve", "finetune", "--target-share", "1"), "--curve finetune"),
        (("--shots", "0,1", "--models", "simple_cnn"), "--curve probe"),
        (("--shots", "0,1", "--weights", "none"), "--curve probe"),
    ],
)
def test_bad_probe_input_is_refused_before_output_exists(folders, extra, names):
    source, target, root = folders
    output = root / f"refused{abs(hash(extra))}"
    line = one_line_error(adapt(source, target, output, *extra))
    assert names in line
    assert not output.exists()

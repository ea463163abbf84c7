"""Cells of one run share a process, the decoded-image cache and a model's feature banks; none of
that may leak into a cell's numbers. The second alpha of a pretrained Lite0 trained after the first
(reading the banks the first wrote) must equal the same cell trained alone in a fresh run folder
(computing the banks itself)."""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import numpy as np  # noqa: E402

from benchmark.config.run_config import RunConfig  # noqa: E402
from benchmark.run.folder import prepare_run  # noqa: E402
from benchmark.run.loop import run_grid  # noqa: E402
from benchmark.run.records import load_predictions, load_records  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "cli"))
from cli_helpers import make_images  # noqa: E402


def test_a_cell_after_another_equals_the_cell_alone(tmp_path):
    data = make_images(tmp_path / "data", per_class=10, size=32)
    first_class = sorted(p for p in data.iterdir() if p.is_dir())[0]
    for image in sorted(first_class.iterdir())[:5]:  # imbalanced, so alpha changes the weights
        image.unlink()
    config = RunConfig(
        data=str(data),
        models=["efficientnet_lite0"],
        alphas=[0.0, 1.0],
        weights="imagenet",
        image_size=32,
        batch_size=8,
        initial_epochs=2,
        fine_tune_epochs=2,
        profile=False,
        save_models="none",
    )
    after = prepare_run(config, tmp_path / "both")
    assert run_grid(after, quiet=True) == 0
    alone = prepare_run(config, tmp_path / "alone")
    assert run_grid(alone, only=[1], quiet=True) == 0
    (second,) = [r for r in load_records(after.run_dir) if r.alpha == 1.0]
    (single,) = load_records(alone.run_dir)
    # The second cell read what the first computed; the lone cell computed it.
    assert second.timings["feature_bank_epochs_computed"] == 0
    assert second.timings["fine_tune_bank_epochs_computed"] == 0
    assert single.timings["feature_bank_epochs_computed"] == 2
    assert single.timings["fine_tune_bank_epochs_computed"] == 2
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        np.testing.assert_allclose(second.history[key], single.history[key], rtol=1e-5, err_msg=key)
    ours, theirs = load_predictions(after.run_dir, second), load_predictions(alone.run_dir, single)
    probabilities = [c for c in ours.columns if c.startswith("prob_")]
    assert list(ours["path"]) == list(theirs["path"])
    np.testing.assert_allclose(ours[probabilities], theirs[probabilities], atol=1e-5)

"""Test-time augmentation in a cell's evaluation: views averaged for val and test alike, both
figures recorded."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.config.run_config import RunConfig
from benchmark.results.tables import leaderboard
from benchmark.run.cell import prepare_cell
from benchmark.run.cell_inputs import evaluated_probabilities
from benchmark.run.folder import prepare_run
from benchmark.run.loop import run_grid
from benchmark.run.records import load_predictions, load_records
from data_pipeline import make_prediction_batch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "cli"))
from cli_helpers import make_images  # noqa: E402

TINY = dict(
    models=["simple_cnn"],
    alphas=[0.0],
    weights="none",
    image_size=32,
    batch_size=8,
    initial_epochs=1,
    fine_tune_epochs=0,
    profile=False,
    save_models="none",
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_images(tmp_path_factory.mktemp("levers") / "data", per_class=8, size=32)


def test_one_view_is_the_plain_evaluation_and_two_average_the_mirror_image(data, tmp_path):
    ctx = prepare_run(RunConfig(data=str(data), **TINY), tmp_path / "run")
    prepared = prepare_cell(
        ctx.config,
        ctx.plan("simple_cnn"),
        ctx.split,
        seed=0,
        alpha=0.0,
        run_dir=ctx.run_dir,
        cache=tmp_path / "c",
    )
    model, inputs = prepared.built.model, prepared.inputs
    plain = evaluated_probabilities(model, inputs, ctx.split, 8, 0)
    assert set(plain) == {"probabilities"}
    one = evaluated_probabilities(model, inputs, ctx.split, 8, 1)
    for part in ("val", "test"):
        np.testing.assert_allclose(
            one["probabilities"][part], plain["probabilities"][part], atol=1e-6
        )
    two = evaluated_probabilities(model, inputs, ctx.split, 8, 2)
    assert two["tta"] == 2
    for part in ("val", "test"):
        paths = ctx.split.subset(part)["path"]
        mirrored = model.predict(
            make_prediction_batch(paths, 32, inputs.preprocess, view=1), verbose=0
        )
        expected = (plain["probabilities"][part] + mirrored) / 2
        np.testing.assert_allclose(two["probabilities"][part], expected, atol=1e-5)
        np.testing.assert_allclose(
            two["plain_probabilities"][part], plain["probabilities"][part], atol=1e-6
        )
    again = evaluated_probabilities(
        model, inputs, ctx.split, 8, 2
    )  # deterministic views: the same figures again
    np.testing.assert_array_equal(again["probabilities"]["test"], two["probabilities"]["test"])


def test_a_tiny_run_with_two_views_records_both_figures_and_says_so(data, tmp_path):
    ctx = prepare_run(RunConfig(data=str(data), tta=2, **TINY), tmp_path / "run")
    assert run_grid(ctx, quiet=True) == 0
    (record,) = load_records(ctx.run_dir)
    assert record.tta == 2 and set(record.metrics_plain) == set(record.metrics) == {"val", "test"}
    assert record.metrics_plain["test"]["count"] == record.metrics["test"]["count"]
    # The predictions file holds the ranked (averaged) probabilities, and metrics are computed from
    # it.
    saved = load_predictions(ctx.run_dir, record)
    test = saved[saved["split"] == "test"]
    probs = test[[f"prob_{c}" for c in record.class_names]].to_numpy()
    assert record.metrics["test"]["accuracy"] == pytest.approx(
        np.mean(probs.argmax(1) == test["true"].to_numpy())
    )
    # Calibration is of the same probabilities: T fitted on validation, accuracy untouched by it.
    assert record.calibration["temperature"] > 0 and {"val", "test"} <= set(record.calibration)
    board = leaderboard(ctx.run_dir)
    assert board.loc[0, "tta"] == 2 and board.loc[0, "test_ece"] == pytest.approx(
        record.calibration["test"]["ece"]
    )
    assert pd.notna(board.loc[0, "temperature"])

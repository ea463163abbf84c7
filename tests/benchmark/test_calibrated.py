"""predict and explain show calibrated probabilities through one function, from the run's record or
the sidecar."""

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmark.inference.explain import explain_image, gradcam_for
from benchmark.inference.predict import load_saved_model, model_inputs, predict_files
from benchmark.run.calibrated import shown_probabilities, with_calibration
from benchmark.run.records import CellRecord, SavedModelInfo, write_record
from benchmark.training.calibration import apply_temperature
from data_pipeline import make_prediction_batch

SIZE, CLASSES, CELL = 8, ["a", "b", "c"], "simple_cnn__alpha0__seed0"


def tiny_model() -> keras.Model:
    """Not mirror-symmetric (a flattening dense layer), so a flipped view really changes the
    output."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(
        keras.layers.Rescaling(1 / 255)(inputs)
    )
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(x))
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("calibrated")
    rng = np.random.default_rng(0)
    (root / "images").mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(
            root / "images" / f"{i}.png"
        )
    run = root / "run"
    (run / "saved_models").mkdir(parents=True)
    tiny_model().save(run / "saved_models" / "simple_cnn.keras")
    info = SavedModelInfo(
        cell_id=CELL,
        model="simple_cnn",
        class_names=CLASSES,
        preprocess="raw",
        image_size=SIZE,
        tta=2,
        temperature=3.0,
    )
    (run / "saved_models" / "simple_cnn.json").write_text(json.dumps(info.to_json()))
    write_record(
        run,
        CellRecord(
            cell_id=CELL,
            index=0,
            model="simple_cnn",
            alpha=0.0,
            seed=0,
            class_names=CLASSES,
            metrics={"val": {"accuracy": 1.0}},
            tta=2,
            calibration={"temperature": 2.0},
        ),
    )
    return run


def images(run_dir: Path) -> list[Path]:
    return sorted((run_dir.parent / "images").glob("*.png"))


def test_shown_probabilities_divide_by_the_temperature_and_keep_the_class():
    raw = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    record = CellRecord(
        cell_id=CELL, index=0, model="m", alpha=0.0, seed=0, calibration={"temperature": 2.0}
    )
    shown = shown_probabilities(record, raw)
    np.testing.assert_allclose(shown, apply_temperature(raw, 2.0))
    assert np.array_equal(shown.argmax(1), raw.argmax(1)) and shown.max() < raw.max()
    old = CellRecord(
        cell_id=CELL, index=0, model="m", alpha=0.0, seed=0
    )  # written before calibration: unchanged
    np.testing.assert_array_equal(shown_probabilities(old, raw), raw)


def test_predict_averages_the_cells_views_and_applies_the_records_temperature(run_dir):
    saved = load_saved_model(str(run_dir))
    assert (
        saved.record.tta == 2 and saved.record.calibration["temperature"] == 2.0
    )  # the record, not the sidecar's 3.0
    table, problems = predict_files(saved, [str(p) for p in images(run_dir)], top_k=3)
    assert not problems
    views = [
        saved.model.predict(make_prediction_batch(images(run_dir), SIZE, view=v), verbose=0)
        for v in (0, 1)
    ]
    assert not np.allclose(views[0], views[1])
    expected = apply_temperature((views[0] + views[1]) / 2, 2.0)
    np.testing.assert_allclose(table["prob_1"], expected.max(1), atol=1e-5)
    assert list(table["label_1"]) == [CLASSES[i] for i in expected.argmax(1)]


def test_a_model_copied_out_of_its_run_uses_its_sidecar(run_dir, tmp_path):
    for suffix in (".keras", ".json"):
        shutil.copy(run_dir / "saved_models" / f"simple_cnn{suffix}", tmp_path / f"copy{suffix}")
    saved = load_saved_model(str(tmp_path / "copy.keras"))
    assert saved.record.tta == 2 and saved.record.calibration == {"temperature": 3.0}


def test_an_old_run_gets_the_temperature_its_report_shows(tmp_path):
    """No calibration in the record: it is fitted from the saved val predictions, as the leaderboard
    fits it."""
    frame = pd.DataFrame(
        {
            "split": ["val"] * 4 + ["test"] * 2,
            "path": [f"x{i}" for i in range(6)],
            "true": [0, 1, 2, 0, 1, 2],
            "pred": [0, 1, 2, 1, 1, 2],
            "prob_a": [0.9, 0.05, 0.05, 0.2, 0.1, 0.1],
            "prob_b": [0.05, 0.9, 0.05, 0.7, 0.8, 0.1],
            "prob_c": [0.05, 0.05, 0.9, 0.1, 0.1, 0.8],
        }
    )
    (tmp_path / "cells").mkdir()
    frame.to_csv(tmp_path / "cells" / f"{CELL}.predictions.csv", index=False)
    record = CellRecord(
        cell_id=CELL,
        index=0,
        model="m",
        alpha=0.0,
        seed=0,
        class_names=CLASSES,
        predictions_file=f"cells/{CELL}.predictions.csv",
    )
    completed = with_calibration(tmp_path, record)
    assert completed.calibration["temperature"] > 0 and "test" in completed.calibration
    assert record.calibration == {}  # the caller's record is not changed, and nothing is written


def test_explain_captions_show_the_calibrated_probability(run_dir):
    saved = load_saved_model(str(run_dir))
    cam = gradcam_for(saved, None)
    inputs = model_inputs(saved, images(run_dir)[:1], None)
    raw = cam.explain(inputs)
    shown = explain_image(saved, cam, inputs)
    np.testing.assert_allclose(
        shown.probabilities, apply_temperature(raw.probabilities[None], 2.0)[0], atol=1e-6
    )
    assert shown.class_index == raw.class_index and np.array_equal(shown.heatmap, raw.heatmap)

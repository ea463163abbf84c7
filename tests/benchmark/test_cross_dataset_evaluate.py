"""`evaluate` in-process on a run folder whose saved model really separates its classes (colour
images).

A model that is right on every image makes the expected figures exact: a correct map scores 1.0,
a map that sends a class to the wrong run class scores 0 on it, and the probabilities must be the
ones the model gives through `predict`'s own input path.
"""

import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmark.cross_dataset.data_notes import dataset_name
from benchmark.cross_dataset.evaluate import LATE_FUSION, NOT_SAVED, evaluate_command
from benchmark.errors import UsageError
from benchmark.results.cross_dataset import COLUMNS, evaluations_dir
from data_pipeline import make_prediction_batch, scan_dataset
from models import BuildSpec, SimpleCNNConfig, build_model

SIZE = 32
RUN_CLASSES = ["glass", "paper", "plastic"]
CHANNEL = {"glass": 0, "paper": 1, "plastic": 2}  # each class is one dominant colour channel


def colour_images(folder: Path, per_class: dict[str, str], n: int, seed: int) -> Path:
    """`n` noisy PNGs per folder; `per_class` maps a folder name to the run class whose colour it
    shows."""
    rng = np.random.default_rng(seed)
    for name, looks_like in per_class.items():
        (folder / name).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 80, (40, 40, 3)) + np.array(
                [160 if c == CHANNEL[looks_like] else 20 for c in range(3)]
            )
            Image.fromarray(pixels.clip(0, 255).astype("uint8")).save(
                folder / name / f"{name}_{i}.png"
            )
    return folder


def record(cell_id: str, index: int, val: float, test: float, **extra) -> dict:
    model = cell_id.split("__")[0]
    return {
        "cell_id": cell_id,
        "index": index,
        "model": model,
        "alpha": float(cell_id.split("alpha")[1].split("__")[0]),
        "seed": 0,
        "status": "ok",
        "class_names": RUN_CLASSES,
        "image_size": SIZE,
        "preprocess": "raw",
        "metrics": {
            "val": {"accuracy": val, "macro_f1": val},
            "test": {"accuracy": test, "macro_f1": test},
        },
        **extra,
    }


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run folder as the runner leaves it: records, splits.csv, one saved model (simple_cnn's best
    cell).

    Besides the saved cell: simple_cnn at alpha 1 (worse, not saved), a mobilenet cell never saved
    and a late-fusion row, so each way a cell cannot be scored is present.
    """
    root = tmp_path_factory.mktemp("evaluate")
    train = colour_images(root / "train", {c: c for c in RUN_CLASSES}, 12, seed=0)
    scanned = scan_dataset(train)
    keras.utils.set_random_seed(0)
    spec = BuildSpec(
        num_classes=3,
        image_size=SIZE,
        weights="none",
        simple_cnn=SimpleCNNConfig(base_filters=8, blocks=2, dense_units=0, dropout=0.0),
    )
    model = build_model("simple_cnn", spec).model
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    pixels = make_prediction_batch(list(scanned.table["path"]), SIZE)
    labels = np.array([RUN_CLASSES.index(c) for c in scanned.table["label"]])
    model.fit(pixels, labels, epochs=15, batch_size=12, verbose=0)
    assert (model.predict(pixels, verbose=0).argmax(1) == labels).all()
    run = root / "run"
    (run / "cells").mkdir(parents=True)
    scanned.table.assign(split="train").to_csv(run / "splits.csv", index=False)
    cells = [
        record("simple_cnn__alpha0__seed0", 0, 0.9, 0.95),
        record("simple_cnn__alpha1__seed0", 1, 0.8, 0.85),
        record("mobilenet__alpha0__seed0", 2, 0.7, 0.75),
        record("late_fusion_simple_cnn__alpha0__seed0", 3, 0.6, 0.65, late_fusion_rule="weighted"),
    ]
    test_rows = pd.DataFrame(
        {"split": "test", "path": scanned.table["path"], "true": labels, "pred": labels}
    )
    for name in RUN_CLASSES:
        test_rows[f"prob_{name}"] = (labels == RUN_CLASSES.index(name)).astype(float)
    for cell in cells:  # the report the command rebuilds reads every cell's predictions
        test_rows.to_csv(run / "cells" / f"{cell['cell_id']}.predictions.csv", index=False)
        cell["predictions_file"] = f"cells/{cell['cell_id']}.predictions.csv"
        (run / "cells" / f"{cell['cell_id']}.json").write_text(json.dumps(cell))
    (run / "saved_models").mkdir()
    model.save(run / "saved_models" / "simple_cnn.keras")
    (run / "saved_models" / "simple_cnn.json").write_text(
        json.dumps(
            {
                "cell_id": "simple_cnn__alpha0__seed0",
                "model": "simple_cnn",
                "class_names": RUN_CLASSES,
                "preprocess": "raw",
                "image_size": SIZE,
                "modality": "image",
            }
        )
    )
    return run


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Unseen images under other names: `Glass` (case), `paper_plastic` (either counts), `food` (the
    run lacks it)."""
    root = tmp_path_factory.mktemp("photos")
    folder = colour_images(root / "my_photos", {"Glass": "glass", "food": "glass"}, 6, seed=1)
    rng = np.random.default_rng(2)
    (folder / "paper_plastic").mkdir()
    for i in range(8):  # half look like paper, half like plastic: all right under the map
        channel = 1 + i % 2
        pixels = rng.integers(0, 80, (40, 40, 3)) + np.array(
            [160 if c == channel else 20 for c in range(3)]
        )
        Image.fromarray(pixels.clip(0, 255).astype("uint8")).save(
            folder / "paper_plastic" / f"mixed_{i}.png"
        )
    (root / "map.yaml").write_text("paper_plastic: [paper, plastic]\nfood: null\n")
    return folder


def test_renamed_classes_through_a_many_to_one_map_score_as_the_model_does(run_dir, photos, capsys):
    assert (
        evaluate_command(str(run_dir), str(photos), label_map=str(photos.parent / "map.yaml")) == 0
    )
    printed = capsys.readouterr().out
    stored = json.loads((evaluations_dir(run_dir) / f"{dataset_name(photos)}.json").read_text())
    assert stored["data_classes"] == ["Glass", "paper_plastic"] and stored["left_out"] == {
        "food": 6
    }
    assert stored["mapping"] == [
        "Glass -> glass",
        "paper_plastic -> paper | plastic",
        "food -> (left out)",
    ]
    (scored,) = [m for m in stored["models"] if m["status"] == "ok"]
    assert scored["cell_id"] == "simple_cnn__alpha0__seed0" and scored["images"] == 14
    assert (
        scored["accuracy"] == 1.0
        and scored["macro_f1"] == 1.0
        and scored["accuracy_ci"] == [1.0, 1.0]
    )
    assert scored["per_class"]["paper_plastic"] == {
        "recall": 1.0,
        "precision": 1.0,
        "f1": 1.0,
        "support": 8,
    }
    assert scored["confusion"] == [[6, 0, 0], [0, 4, 4]]
    assert scored["in_domain_test_accuracy"] == 0.95
    predictions = pd.read_csv(run_dir / scored["predictions_file"])
    model = keras.saving.load_model(run_dir / "saved_models" / "simple_cnn.keras")
    expected = model.predict(make_prediction_batch(list(predictions["path"]), SIZE), verbose=0)
    np.testing.assert_allclose(
        predictions[[f"prob_{c}" for c in RUN_CLASSES]].to_numpy(), expected, atol=1e-5
    )
    assert (
        set(predictions["targets"]) == {"glass", "paper|plastic"} and predictions["correct"].all()
    )
    reasons = {m["cell_id"]: m["reason"] for m in stored["models"] if m["status"] != "ok"}
    assert reasons == {
        "mobilenet__alpha0__seed0": NOT_SAVED,
        "late_fusion_simple_cnn__alpha0__seed0": LATE_FUSION,
    }
    table = pd.read_csv(run_dir / "cross_dataset.csv")
    assert list(table.columns) == COLUMNS and len(table) == 3
    row = table[table["status"] == "ok"].iloc[0]
    assert row["drop"] == pytest.approx(0.95 - 1.0) and row["accuracy_ci"] == "1.0000-1.0000"
    assert (
        row["in_domain_test_accuracy_ci"] == "1.0000-1.0000"
    )  # the fixture's test predictions are all right
    report = (run_dir / "report.md").read_text()
    assert "Cross-dataset evaluation" in report and "paper_plastic -> paper | plastic" in report
    assert "left out (null in the label map): food (6 images)" in printed


def test_a_wrong_map_scores_zero_on_that_class_and_an_output_folder_keeps_the_run_as_it_was(
    run_dir, photos, tmp_path
):
    wrong = tmp_path / "wrong.json"
    wrong.write_text(
        json.dumps({"Glass": "paper", "paper_plastic": ["paper", "plastic"], "food": None})
    )
    report_before = (
        (run_dir / "report.md").read_text() if (run_dir / "report.md").exists() else None
    )
    out = tmp_path / "out"
    assert (
        evaluate_command(
            str(run_dir), str(photos), label_map=str(wrong), cells="all", output=str(out)
        )
        == 0
    )
    table = pd.read_csv(out / "cross_dataset.csv")
    ok = table[table["status"] == "ok"].iloc[0]
    assert (
        ok["accuracy"] == pytest.approx(8 / 14)
        and ok["worst_class"] == "Glass"
        and ok["worst_class_recall"] == 0.0
    )
    skipped = table[table["status"] != "ok"].set_index("cell_id")["reason"]
    assert (
        skipped["simple_cnn__alpha1__seed0"] == NOT_SAVED
    )  # --cells all lists the unsaved alpha too
    assert (out / "cross_dataset.md").is_file() and not (out / "report.md").exists()
    assert (
        (run_dir / "report.md").read_text() if report_before is not None else None
    ) == report_before


def test_a_second_data_set_adds_rows_and_images_the_run_holds_are_noted(run_dir, tmp_path, capsys):
    out = tmp_path / "out"
    seen = colour_images(
        tmp_path / "seen", {"glass": "glass", "paper": "paper"}, 12, seed=0
    )  # the training pixels again
    other = colour_images(tmp_path / "other", {"glass": "glass", "plastic": "plastic"}, 3, seed=5)
    assert evaluate_command(str(run_dir), str(seen), output=str(out)) == 0
    assert "24 of DATA's 24 scored images are images of the run itself" in capsys.readouterr().err
    assert evaluate_command(str(run_dir), str(other), output=str(out)) == 0
    assert (
        evaluate_command(str(run_dir), str(other), output=str(out)) == 0
    )  # again: replaces its own rows
    table = pd.read_csv(out / "cross_dataset.csv")
    assert sorted(table.groupby("dataset").size().tolist()) == [3, 3]
    assert "images of the run itself" in (out / "cross_dataset.md").read_text()


def test_bad_input_is_one_line_and_exit_2(run_dir, photos, tmp_path, capsys):
    from run_benchmark import main

    cases = [
        ([str(run_dir), str(photos)], "'food', 'paper_plastic'"),  # unmatched, no map
        (
            [str(run_dir), str(photos), "--label-map", str(photos.parent / "missing.yaml")],
            "missing.yaml",
        ),
        ([str(tmp_path), str(photos)], "not a run folder"),
    ]
    broken = colour_images(tmp_path / "broken", {"glass": "glass", "paper": "paper"}, 2, seed=3)
    (broken / "paper" / "bad.png").write_bytes(b"\x89PNG not really")
    cases.append(([str(run_dir), str(broken)], "bad.png"))
    for argv, named in cases:
        assert main(["evaluate", *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("run_benchmark: ") and named in err, err
    assert (
        main(
            [
                "evaluate",
                str(run_dir),
                str(broken),
                "--skip-corrupt",
                "--output",
                str(tmp_path / "o"),
            ]
        )
        == 0
    )
    assert "skipped unreadable image" in capsys.readouterr().out


def test_one_bin_of_photos_gets_accuracy_and_its_confusion_row(run_dir, tmp_path, capsys):
    """Issue 30: a DATA folder holding one class was refused ("at least two class folders")."""
    one = colour_images(tmp_path / "one_bin", {"plastic": "plastic"}, 5, seed=7)
    colour_images(tmp_path / "glassy", {"plastic": "glass"}, 1, seed=8)  # plastic in glass colours
    (tmp_path / "glassy" / "plastic" / "plastic_0.png").replace(one / "plastic" / "glassy.png")
    out = tmp_path / "out"
    assert evaluate_command(str(run_dir), str(one), output=str(out)) == 0
    captured = capsys.readouterr()
    assert "DATA has one class to score (plastic)" in captured.err
    assert "per-class precision and F1 need at least two classes" in captured.err
    stored = json.loads((evaluations_dir(out) / f"{dataset_name(one)}.json").read_text())
    (scored,) = [m for m in stored["models"] if m["status"] == "ok"]
    assert scored["images"] == 6 and scored["accuracy"] == pytest.approx(5 / 6)
    assert scored["confusion"] == [[1, 0, 5]]  # the row of plastic: one predicted glass
    assert scored["macro_f1"] is None and scored["macro_f1_ci"] == []
    assert scored["per_class"] == {"plastic": {"recall": pytest.approx(5 / 6), "support": 6}}
    row = pd.read_csv(out / "cross_dataset.csv").query("status == 'ok'").iloc[0]
    assert row["accuracy"] == pytest.approx(5 / 6) and pd.isna(row["macro_f1"])
    assert "DATA has one class to score" in (out / "cross_dataset.md").read_text()


def test_a_run_without_saved_models_says_how_to_get_them(run_dir, photos, tmp_path):
    bare = tmp_path / "bare"
    (bare / "cells").mkdir(parents=True)
    for path in (run_dir / "cells").glob("*.json"):
        (bare / "cells" / path.name).write_text(path.read_text())
    with pytest.raises(UsageError, match="no saved model.*--save-models best"):
        evaluate_command(str(bare), str(photos))


def test_captions_naming_the_answer_are_noted_for_text_models_only():
    from benchmark.cross_dataset.evaluate import ChosenCell, caption_note
    from benchmark.cross_dataset.label_map import resolve_label_map
    from benchmark.run.records import CellRecord

    label_map = resolve_label_map(["bottles", "paper"], RUN_CLASSES, {"bottles": "glass"})
    scored = pd.DataFrame(
        {
            "label": ["bottles", "bottles", "paper"],
            "caption": ["green glass jar", "glass bottle", "note"],
        }
    )
    text = CellRecord(
        cell_id="text_bert__alpha0__seed0",
        index=0,
        model="text_bert",
        alpha=0.0,
        seed=0,
        modality="text",
    )
    image = CellRecord(
        cell_id="simple_cnn__alpha0__seed0", index=1, model="simple_cnn", alpha=0.0, seed=0
    )
    note = caption_note(
        [ChosenCell(text, Path("t.keras")), ChosenCell(image, Path("i.keras"))], scored, label_map
    )
    assert (
        note.startswith("67% of DATA's captions")
        and "text_bert__alpha0__seed0 read the answer" in note
    )
    assert "simple_cnn" not in note
    assert caption_note([ChosenCell(image, Path("i.keras"))], scored, label_map) == ""


def test_adapt_bn_scores_the_model_again_after_re_estimating_batch_norm_and_keeps_the_file(
    run_dir, tmp_path, capsys
):
    brighter = colour_images(tmp_path / "bright", {c: c for c in RUN_CLASSES}, 4, seed=7)
    for png in brighter.rglob("*.png"):  # the same kind of photo under stronger light
        pixels = np.asarray(Image.open(png)).astype(int) + 70
        Image.fromarray(pixels.clip(0, 255).astype("uint8")).save(png)
    saved = run_dir / "saved_models" / "simple_cnn.keras"
    digest = saved.read_bytes()
    out = tmp_path / "out"
    assert evaluate_command(str(run_dir), str(brighter), output=str(out), adapt_bn=True) == 0
    printed = capsys.readouterr().out
    stored = json.loads((evaluations_dir(out) / f"{dataset_name(brighter)}.json").read_text())
    (scored,) = [m for m in stored["models"] if m["status"] == "ok"]
    model = keras.saving.load_model(saved)
    layers = [x for x in model.layers if isinstance(x, keras.layers.BatchNormalization)]
    assert stored["adapt_bn"] and scored["bn_layers"] == len(layers) > 0
    assert 0.0 <= scored["bn_adapted_accuracy"] <= 1.0
    assert len(scored["bn_adapted_accuracy_ci"]) == 2
    row = pd.read_csv(out / "cross_dataset.csv").query("status == 'ok'").iloc[0]
    assert row["bn_adapt_gain"] == pytest.approx(row["bn_adapted_accuracy"] - row["accuracy"])
    assert "bn_adapted_accuracy" in printed
    assert "bn_adapt_gain" in (out / "cross_dataset.md").read_text()
    assert saved.read_bytes() == digest  # adapted in memory only

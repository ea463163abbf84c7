"""The run report from a hand-built run folder: 2 models x 2 alphas, 3 classes, one failed cell."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmark.results.alpha_tables import best_per_model
from benchmark.results.cell_report import best_cell
from benchmark.results.report import write_report
from benchmark.results.tables import build_tables
from benchmark.run.records import CellRecord
from benchmark.training.metrics import classification_metrics

CLASSES = ["cardboard_box", "glass", "metal"]
MODELS = {"tiny_a": "family_a", "tiny_b": "family_b"}
ALPHAS = (0.0, 0.5)
PER_SPLIT = {"train": 6, "val": 6, "test": 9}
ENV = {
    "python": "3.11.9",
    "tensorflow": "2.21.0",
    "keras": "3.15.1",
    "keras_hub": None,
    "devices": ["/device:CPU:0"],
    "git_commit": "abc123",
}


def write_images(root: Path) -> pd.DataFrame:
    """Small real images per split and class; two test images share pixels (one duplicate group)."""
    rows = []
    for split, n in PER_SPLIT.items():
        for i in range(n):
            label = CLASSES[i % len(CLASSES)]
            suffix = "png" if i % 2 else "jpg"
            path = root / "images" / split / f"{label}_{i}.{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            shade = (40 * (i % 6), 80 * (i % 3), 200) if split != "test" or i > 1 else (10, 200, 10)
            Image.new("RGB", (40, 30), shade).save(path)
            rows.append(
                {
                    "path": str(path),
                    "label": label,
                    "split": split,
                    "content_hash": "dup" if split == "test" and i <= 1 else f"h{split}{i}",
                    "caption": "",
                }
            )
    return pd.DataFrame(rows)


def fake_record(run_dir: Path, splits: pd.DataFrame, model: str, alpha: float, index: int) -> dict:
    """A record in the runner's format, with predictions of model- and alpha-dependent quality."""
    cell_id = f"{model}__alpha{alpha:g}__seed0"
    rng = np.random.default_rng(index)
    metrics, frames = {}, []
    for split in ("val", "test"):
        part = splits[splits["split"] == split]
        y_true = part["label"].map(CLASSES.index).to_numpy()
        probs = rng.dirichlet(np.ones(len(CLASSES)), size=len(y_true))
        hits = rng.random(len(y_true)) < 0.5 + 0.1 * index
        probs[hits, y_true[hits]] += 2.0
        probs /= probs.sum(axis=1, keepdims=True)
        metrics[split] = classification_metrics(y_true, probs, CLASSES)
        frame = pd.DataFrame(
            {
                "split": split,
                "path": part["path"].to_numpy(),
                "true": y_true,
                "pred": probs.argmax(1),
            }
        )
        for i, name in enumerate(CLASSES):
            frame[f"prob_{name}"] = probs[:, i]
        frames.append(frame)
    predictions = pd.concat(frames, ignore_index=True)
    unreadable = ["test", str(run_dir / "missing.jpg"), 0, 1, *[1 / len(CLASSES)] * len(CLASSES)]
    predictions.loc[len(predictions)] = unreadable  # the grid must skip it
    predictions_file = f"cells/{cell_id}.predictions.csv"
    predictions.to_csv(run_dir / predictions_file, index=False)
    epochs = 4 + index
    return {
        "cell_id": cell_id,
        "index": index,
        "model": model,
        "family": MODELS[model],
        "modality": "image",
        "alpha": alpha,
        "seed": 0,
        "status": "ok",
        "error": "",
        "class_names": CLASSES,
        "metrics": metrics,
        "predictions_file": predictions_file,
        "config": {},
        "environment": ENV,
        "weights": "imagenet",
        "phases": [{"name": "head", "epochs": 2}, {"name": "fine_tune", "epochs": epochs - 2}],
        "params": {"total": 1_000_000 * (index + 1)},
        "timings": {"train_seconds": 10.0 + index},
        "history": {
            "loss": list(np.linspace(1.2, 0.4, epochs)),
            "accuracy": list(np.linspace(0.4, 0.9, epochs)),
            "val_loss": list(np.linspace(1.3, 0.6, epochs)),
            "val_accuracy": list(np.linspace(0.35, 0.8, epochs)),
            "phase_boundary": 2,
        },
    }


def make_run(tmp_path: Path, *, failed: bool = True) -> Path:
    run_dir = tmp_path / "run"
    (run_dir / "cells").mkdir(parents=True)
    splits = write_images(tmp_path)
    splits.to_csv(run_dir / "splits.csv", index=False)
    (run_dir / "dataset_warnings.txt").write_text("2 identical images | in test\n")
    index = 0
    for model in MODELS:
        for alpha in ALPHAS:
            record = fake_record(run_dir, splits, model, alpha, index)
            (run_dir / "cells" / f"{record['cell_id']}.json").write_text(json.dumps(record))
            index += 1
    if failed:
        bad = {
            "cell_id": "tiny_c__alpha0__seed0",
            "index": index,
            "model": "tiny_c",
            "alpha": 0.0,
            "seed": 0,
            "status": "failed",
            "error": "ResourceExhaustedError: out of memory",
            "config": {},
            "environment": ENV,
        }
        (run_dir / "cells" / "tiny_c__alpha0__seed0.json").write_text(json.dumps(bad))
    return run_dir


def linked_images(report: Path) -> list[Path]:
    return [
        report.parent / link
        for link in re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", report.read_text())
    ]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    run_dir = make_run(tmp_path_factory.mktemp("report"))
    tables = build_tables(run_dir)
    return run_dir, tables, write_report(run_dir, tables)


def test_report_links_only_valid_images(built):
    run_dir, _, report = built
    assert report == run_dir / "report.md"
    images = linked_images(report)
    assert len(images) >= 10
    for path in images:
        assert path.is_file(), path
        assert path.parent == run_dir / "plots"
        assert re.fullmatch(r"[A-Za-z0-9._-]+\.png", path.name)
        assert path.stat().st_size > 5000, path
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert min(image.size) > 200
    assert "could not be drawn" not in report.read_text()


def test_best_cell_sections(built):
    run_dir, tables, report = built
    text = report.read_text()
    top = tables["leaderboard"].iloc[0]
    winner = f"{top['model']}__alpha{top['alpha']:g}__seed0"
    assert f"## Best cell: `{winner}`" in text
    assert f"plots/confusion_{winner}.png" in text
    assert f"plots/predictions_{winner}.png" in text
    assert f"plots/curves_{winner}.png" in text
    assert (
        f"plots/reliability_{winner}.png" in text
        and "### Calibration" in text
        and "after dividing the logits by T" in text
    )
    for record in tables[
        "best_per_model"
    ].itertuples():  # every model's best alpha has its confusion matrix
        assert f"plots/confusion_{record.model}__alpha{record.alpha:g}__seed0.png" in text
    assert "| class" in text and "cardboard_box" in text


def test_report_sections_and_failed_cell(built):
    _, _, report = built
    text = report.read_text()
    for heading in (
        "## Leaderboard (top 20)",
        "### Best model per family",
        "## Alpha sweep",
        "## Accuracy against inference cost",
        "## Training curves",
        "## Dataset",
        "## Environment",
        "## Reading the leaderboard",
    ):
        assert heading in text, heading
    assert "tiny_c__alpha0__seed0" in text and "out of memory" in text
    assert "no inference-cost columns" in text
    assert "docs/leaderboard.md#reading-the-leaderboard" in text  # the page the site builds
    assert "family_a" in text and "family_b" in text
    assert "test_accuracy_ci" in text
    assert "1 duplicate-content group(s)" in text
    assert "2 identical images \\| in test" in text
    assert "abc123" in text
    assert "TrashNet" not in text  # not TrashNet's classes
    assert "<details>" in text


def test_cost_figure_when_columns_exist(tmp_path):
    run_dir = make_run(tmp_path, failed=False)
    tables = build_tables(run_dir)
    board = tables["leaderboard"].assign(infer_ms_b1=lambda f: 3.0 + f["params_m"], gflops=np.nan)
    tables = {**tables, "leaderboard": board, "best_per_model": best_per_model(board)}
    text = write_report(run_dir, tables).read_text()
    assert "plots/accuracy_vs_infer_ms_b1.png" in text
    assert "accuracy_vs_gflops" not in text
    assert (run_dir / "plots" / "accuracy_vs_infer_ms_b1.png").stat().st_size > 5000


def test_report_with_only_failed_cells_and_trashnet_credit(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "cells").mkdir(parents=True)
    bad = {
        "cell_id": "m__alpha0__seed0",
        "index": 0,
        "model": "m",
        "alpha": 0.0,
        "seed": 0,
        "status": "failed",
        "error": "boom",
        "config": {},
        "environment": ENV,
    }
    (run_dir / "cells" / "m__alpha0__seed0.json").write_text(json.dumps(bad))
    text = write_report(run_dir).read_text()
    assert "No cell finished." in text and "boom" in text
    assert not linked_images(run_dir / "report.md")


def test_trashnet_credit(tmp_path, monkeypatch):
    import benchmark.results.report as report_module

    monkeypatch.setattr(report_module, "TRASHNET_CLASSES", sorted(CLASSES))
    run_dir = make_run(tmp_path, failed=False)
    assert "TrashNet" in write_report(run_dir).read_text()


def test_best_cell_picks_best_seed_by_validation():
    records = [
        {
            "model": "m",
            "alpha": 0.5,
            "seed": s,
            "status": "ok",
            "cell_id": f"s{s}",
            "metrics": {"val": {"accuracy": acc, "macro_f1": 0.5}},
        }
        for s, acc in enumerate([0.7, 0.9, 0.8])
    ]
    records.append({"model": "m", "alpha": 0.5, "seed": 9, "status": "failed", "cell_id": "bad"})
    records = [CellRecord.from_json(r) for r in records]
    assert best_cell(records, "m", 0.5).cell_id == "s1"
    assert best_cell(records, "m", 1.0) is None

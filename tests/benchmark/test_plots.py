"""Each figure from plain data at a realistic size: 7 models x 5 alphas, TrashNet's six classes."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmark.results import plots

CLASSES = ["cardboard", "glass", "metal", "paper", "plastic", "trash"]
MODELS = [
    "mobilenet_v2",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "resnet50v2",
    "densenet121",
    "convnext_tiny",
    "simple_cnn",
]
ALPHAS = [0.0, 0.25, 0.5, 0.75, 1.0]


def fake_board() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for m, model in enumerate(MODELS):
        for alpha in ALPHAS:
            row = {"model": model, "alpha": alpha, "status": "ok", "params_m": 2.0 + 5 * m}
            for column in ("val_accuracy", "test_accuracy", "val_macro_f1", "test_macro_f1"):
                row[column] = 0.6 + 0.04 * m + 0.03 * alpha + rng.normal(0, 0.01)
            for column in ("val_accuracy", "test_accuracy", "test_macro_f1"):
                row[f"{column}_ci"] = plots_ci(row[column])
            row["worst_class"], row["worst_class_f1"] = "trash", 0.3 + 0.2 * alpha + 0.03 * m
            row["tied_with_best"] = m >= 5
            rows.append(row)
    rows.append({"model": "broken_net", "alpha": 0.0, "status": "failed"})
    board = pd.DataFrame(rows)
    board = board.sort_values("val_accuracy", ascending=False, na_position="last").reset_index(
        drop=True
    )
    board.insert(0, "rank", range(1, len(board) + 1))
    return board


def plots_ci(value: float) -> str:
    return f"{max(value - 0.04, 0):.4f}-{min(value + 0.035, 1):.4f}"


def assert_png(path, min_side=300):
    assert path.is_file() and path.suffix == ".png"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert min(image.size) >= min_side, image.size


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0.8123-0.8790", (0.8123, 0.879)),
        ("1.0000-1.0000", (1.0, 1.0)),
        ("", None),
        (float("nan"), None),
        (None, None),
        ("n/a", None),
    ],
)
def test_parse_ci(text, expected):
    assert plots.parse_ci(text) == (pytest.approx(expected) if expected else None)


def test_safe_name_keeps_cell_id_dots():
    assert plots.safe_name("mobilenet_v2__alpha0.5__seed0") == "mobilenet_v2__alpha0.5__seed0"
    assert plots.safe_name("late fusion (confidence)/x") == "late_fusion_confidence_x"
    assert plots.safe_name("../..") == "plot"


def test_pareto_front():
    cost = np.array([1.0, 2.0, 3.0, 4.0, 2.5])
    score = np.array([0.5, 0.7, 0.6, 0.9, 0.7])
    assert plots.pareto_front(cost, score).tolist() == [0, 1, 3]


def test_sweep_and_leaderboard_figures(tmp_path):
    board = fake_board()
    assert_png(plots.alpha_sweep(board, tmp_path / "sweep.png", title="Alpha sweep"))
    assert_png(plots.worst_class_sweep(board, tmp_path / "worst.png"))
    assert_png(plots.leaderboard_dots(board, tmp_path / "board.png", top=20))
    best = board[board["status"] == "ok"].drop_duplicates("model")
    best = best.assign(infer_ms_b1=[3.0 * (i + 1) for i in range(len(best))])
    assert_png(plots.accuracy_vs_cost(best, "infer_ms_b1", tmp_path / "cost.png"))


def test_figures_without_intervals(tmp_path):
    board = fake_board().drop(
        columns=["val_accuracy_ci", "test_accuracy_ci", "test_macro_f1_ci", "tied_with_best"]
    )
    assert_png(plots.alpha_sweep(board, tmp_path / "sweep.png"))
    assert_png(plots.leaderboard_dots(board, tmp_path / "board.png"), min_side=200)


def test_cell_figures(tmp_path):
    history = {
        "loss": [1.5, 1.1, 0.9, 0.7, 0.6],
        "accuracy": [0.4, 0.6, 0.7, 0.8, 0.85],
        "val_loss": [1.4, 1.0, 0.95, 0.8, 0.82],
        "val_accuracy": [0.45, 0.6, 0.65, 0.75, 0.74],
        "phase_boundary": 3,
    }
    assert_png(
        plots.training_curves(
            history, tmp_path / "curves.png", title="mobilenet_v2, alpha 0.5, seed 0"
        )
    )
    assert_png(
        plots.training_curves({"loss": [1.0]}, tmp_path / "short.png", title="one epoch"),
        min_side=200,
    )
    matrix = np.diag([60, 70, 55, 80, 65, 10]) + 3
    matrix[5] = 0  # a class absent from the test split must not divide by zero
    assert_png(
        plots.confusion_matrices(
            matrix, CLASSES, tmp_path / "cm.png", title="mobilenet_v2, alpha 0.5"
        )
    )


def test_prediction_grid_skips_unreadable_and_limits(tmp_path):
    items = []
    for i in range(30):
        path = tmp_path / f"img{i}.jpg"
        Image.new("RGB", (64, 48), (8 * i, 100, 200 - 5 * i)).save(path)
        items.append(
            {
                "path": str(path),
                "true": CLASSES[i % 6],
                "pred": CLASSES[(i // 3) % 6],
                "confidence": 0.5,
            }
        )
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    items.insert(0, {"path": str(tmp_path / "bad.jpg"), "true": "glass", "pred": "metal"})
    items.insert(0, {"path": str(tmp_path / "missing.jpg"), "true": "glass", "pred": "metal"})
    assert_png(plots.prediction_grid(items, tmp_path / "grid.png", title="mobilenet_v2, alpha 0.5"))
    assert plots.prediction_grid(items[:2], tmp_path / "none.png", title="x") is None
    assert not (tmp_path / "none.png").exists()


def test_reliability_diagram_draws_before_and_after_scaling(tmp_path):
    from PIL import Image

    from benchmark.results.reliability import reliability_diagram

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4) * 0.3, size=200)
    labels = rng.integers(0, 4, 200)
    both = reliability_diagram(probs, labels, 1.7, tmp_path / "both.png", title="t")
    plain = reliability_diagram(probs, labels, None, tmp_path / "plain.png")
    with Image.open(both) as wide, Image.open(plain) as narrow:
        assert wide.size[0] > 1.6 * narrow.size[0]  # two panels against one

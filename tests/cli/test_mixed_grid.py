"""Image, text, early-fusion and late-fusion models in one CLI sweep, ranked together (real MiniLM
encoder)."""

import json

import numpy as np
import pandas as pd
from cli_helpers import run_cli
from PIL import Image

# The image tells "jars" (reddish) from the rest; only the caption tells "bags" from "cans".
CAPTIONS = {
    "bags": ["crumpled plastic sack", "shopping sack with handles", "thin plastic sack"],
    "cans": ["dented soda tin", "empty food tin", "crushed drink tin"],
    "jars": ["small container", "old container", "container with lid"],
}


def captioned_manifest(root, per_class: int = 12):
    rng = np.random.default_rng(0)
    rows = []
    (root / "images").mkdir(parents=True)
    for label, captions in CAPTIONS.items():
        for i in range(per_class):
            base = np.array([200, 40, 40]) if label == "jars" else np.array([60, 60, 200])
            pixels = (rng.integers(0, 50, (32, 32, 3)) + base).clip(0, 255).astype("uint8")
            name = f"images/{label}_{i}.png"
            Image.fromarray(pixels).save(root / name)
            rows.append({"path": name, "label": label, "caption": captions[i % len(captions)]})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


def test_mixed_grid_runs_and_ranks_every_modality_together(minilm_path, tmp_path):
    manifest = captioned_manifest(tmp_path / "data")
    run_dir = tmp_path / "run"
    done = run_cli(
        "--models",
        "mobilenet_v2,text_bert,fusion_mobilenet_v2,late_fusion_mobilenet_v2",
        "--alphas",
        "0",
        "--weights",
        "none",
        "--text-encoder",
        minilm_path,
        "--data",
        str(manifest),
        "--image-size",
        "32",
        "--batch-size",
        "8",
        "--initial-epochs",
        "6",
        "--fine-tune-epochs",
        "1",
        "--initial-lr",
        "0.01",
        "--sequence-length",
        "12",
        "--no-profile",
        "--save-models",
        "none",
        "--quiet",
        "--output",
        str(run_dir),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    board = pd.read_csv(run_dir / "leaderboard.csv")
    assert set(board["model"]) == {
        "mobilenet_v2",
        "text_bert",
        "fusion_mobilenet_v2",
        "late_fusion_mobilenet_v2",
        "late_fusion_mobilenet_v2 (confidence)",
    }
    assert (board["status"] == "ok").all() and list(board["rank"]) == list(range(1, 6))
    accuracy = dict(zip(board["model"], board["val_accuracy"]))
    assert accuracy["text_bert"] > 0.5 and accuracy["fusion_mobilenet_v2"] > 0.5  # chance is 1/3
    fusion = json.loads((run_dir / "cells" / "fusion_mobilenet_v2__alpha0__seed0.json").read_text())
    assert [p["name"] for p in fusion["phases"]] == ["head", "fine_tune"] and fusion["phases"][1][
        "unfrozen_layers"
    ] > 0
    late = json.loads(
        (run_dir / "cells" / "late_fusion_mobilenet_v2__alpha0__seed0.json").read_text()
    )
    assert late["components"] == ["mobilenet_v2", "text_bert"] and 0 <= late["image_weight"] <= 1

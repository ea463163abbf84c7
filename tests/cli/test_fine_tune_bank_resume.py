"""A cell killed in phase 2 on the fine-tune bank (SIGKILL, no clean-up) resumes on the bank."""

import json
import signal

import numpy as np
from cli_helpers import kill_when_epoch_backed_up, make_images, run_cli

EPOCHS = 30
CELL = "mobilenet_v3_small__alpha0__seed0"


def test_a_cell_killed_in_phase_2_on_the_bank_resumes_on_it(tmp_path):
    from models import BuildSpec, build_model

    weights = tmp_path / "backbone.weights.h5"  # a random backbone the runner treats as pretrained
    spec = BuildSpec(num_classes=3, image_size=32, weights="none")
    build_model("mobilenet_v3_small", spec).backbone.save_weights(weights)
    data = make_images(tmp_path / "data", per_class=12)
    run_dir = tmp_path / "run"
    args = [
        "--models",
        "mobilenet_v3_small",
        "--alphas",
        "0",
        "--weights",
        str(weights),
        "--image-size",
        "32",
        "--batch-size",
        "4",
        "--initial-epochs",
        "1",
        "--fine-tune-epochs",
        str(EPOCHS),
        "--patience",
        "1000",
        "--save-models",
        "none",
        "--no-profile",
        "--quiet",
        "--data",
        str(data),
        "--output",
        str(run_dir),
        "--cell",
        "0",
    ]
    state = run_dir / "work" / CELL / "fine_tune" / "state.json"
    assert kill_when_epoch_backed_up(args, state) == -signal.SIGKILL, "finished first; raise EPOCHS"
    killed_at = json.loads(state.read_text())["epoch"]
    (bank,) = (run_dir / "fine_tune_bank").iterdir()
    for path in bank.glob("epoch*.npz"):  # all a reader can find is whole (temporaries may stay)
        with np.load(path) as stored:
            assert len(stored["features"]) == len(stored["labels"]) > 0

    done = run_cli(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads((run_dir / "cells" / f"{CELL}.json").read_text())
    assert record["status"] == "ok" and record["fine_tune_features"] == "bank"
    tune = record["phases"][1]
    assert tune["resumed_from_epoch"] >= killed_at + 1 >= 3 and tune["epochs"] == EPOCHS
    stored = sorted(p.name for p in bank.glob("epoch*.npz"))
    assert stored == [f"epoch{e:03d}.npz" for e in range(1, EPOCHS + 1)]  # after phase 1's epoch 0
    assert record["timings"]["fine_tune_bank_epochs_computed"] <= EPOCHS - killed_at

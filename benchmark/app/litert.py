"""The LiteRT int8 export of a saved model, as a second way to classify with it.

Profiling keeps each model's full-integer export (`deployment/<model>.int8_full.tflite`, of the
cell it profiled). Where that cell is the saved model's, the page offers the export too, first,
since it is what a phone would run: same preprocessing, same test-time views and temperature as
`predict` (only the arithmetic is int8), and the latency it measured at profiling shown beside the
one measured here. Grad-CAM needs gradients, which a LiteRT model has none of, so the heatmap is
always drawn from the Keras model.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from benchmark.app.run_folder import ModelChoice
from benchmark.deployment.run_costs import KEPT_EXPORT, litert_export, load_profiles
from benchmark.run.calibrated import shown_probabilities
from data_pipeline import make_prediction_batch
from models import preprocess_function

RUNTIME = "litert_int8"


def with_litert(run_dir: Path, choices: list[ModelChoice]) -> list[ModelChoice]:
    """`choices` with each model's LiteRT export (when it is of that model's cell) placed before it,
    and the profiled latency on both."""
    profiles = {p["model"]: p for p in load_profiles(run_dir)}
    found = []
    for choice in choices:
        profile = profiles.get(choice.record.model)
        if profile is None or profile.get("cell_id") != choice.record.cell_id:
            found.append(choice)
            continue
        export = litert_export(run_dir, choice.record.model)
        variant = next(
            (
                v
                for v in profile["variants"]
                if v["format"] == "tflite" and v["precision"] == KEPT_EXPORT
            ),
            {},
        )
        if export.is_file() and variant.get("status") == "ok":
            found.append(
                dataclasses.replace(
                    choice,
                    key=f"{choice.key}.litert-int8",
                    runtime=RUNTIME,
                    export=export,
                    profiled_ms=variant.get("infer_ms_b1"),
                )
            )
        found.append(dataclasses.replace(choice, profiled_ms=profile.get("infer_ms_b1")))
    return found


class LiteRunner:
    """Probabilities of a photo from a `.tflite` export, fed as `predict` feeds the Keras model."""

    def __init__(self, path: Path, saved):
        from ai_edge_litert.interpreter import Interpreter

        self.saved = saved
        self.interpreter = Interpreter(model_path=str(path), num_threads=os.cpu_count())
        self.interpreter.allocate_tensors()
        self.source = self.interpreter.get_input_details()[0]
        self.target = self.interpreter.get_output_details()[0]
        self.preprocess = preprocess_function(saved.info.preprocess)

    def __call__(self, path: Path) -> np.ndarray:
        views = []
        for view in range(max(self.saved.record.tta, 1)):
            batch = make_prediction_batch([path], self.saved.info.image_size, self.preprocess, view)
            self.interpreter.set_tensor(self.source["index"], np.asarray(batch, np.float32))
            self.interpreter.invoke()
            views.append(np.asarray(self.interpreter.get_tensor(self.target["index"]), np.float64))
        return shown_probabilities(self.saved.record, np.mean(views, axis=0))[0]

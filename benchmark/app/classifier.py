"""Scores uploaded photos with a run's saved model exactly as `predict` and `explain` do.

The probabilities come from `inference.predict.file_probabilities` (the cell's test-time views and
temperature), so the page and `predict RUN_DIR photo.jpg` name the same class; the heatmap comes
from `inference.explain` (`read_image`, the same Grad-CAM), drawn for that class. Photos are written
to a private temporary folder first because the model's reader takes files, named after the upload
so a fusion model's caption is read from the name as `predict` reads it.
"""

from __future__ import annotations

import base64
import io
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmark.app.run_folder import ModelChoice, unlike_threshold
from benchmark.app.uploads import Upload, safe_stem
from benchmark.errors import first_line
from benchmark.inference.explain import HEAT_ALPHA, read_image
from benchmark.inference.gradcam import GradCam, upsample
from benchmark.inference.predict import SavedModel, file_probabilities, load_model_file

TOP_K = 5
# The overlay's side on the page: big enough to see where the model looked, small enough to send.
OVERLAY_SIDE = 256


class KerasModel:
    """A saved Keras model and its Grad-CAM (built at first use), shared by its LiteRT twin."""

    def __init__(self, choice: ModelChoice):
        self.saved: SavedModel = load_model_file(choice.path)
        self.saved.record = choice.record  # the calibrated record the run folder holds
        self._cam: GradCam | None = None
        self.cam_problem = ""

    def cam(self) -> GradCam | None:
        """Grad-CAM of the model, or None (and `cam_problem` says why) when it has none."""
        if self._cam is None and not self.cam_problem:
            if self.saved.info.modality == "text":
                self.cam_problem = "a text-only model has no image to explain"
            else:
                try:
                    self._cam = GradCam(self.saved.model)
                except Exception as err:  # a model Grad-CAM cannot explain still classifies
                    self.cam_problem = first_line(err)
        return self._cam


class Classifier:
    """One choice of the page: its runtime's probabilities, the Keras model's Grad-CAM, and the
    confidence under which a photo looks unusual."""

    def __init__(self, run_dir: Path, choice: ModelChoice, keras_model: KerasModel):
        self.choice = choice
        self.keras = keras_model
        self.saved = keras_model.saved
        if choice.export is not None:
            from benchmark.app.litert import LiteRunner

            self.probabilities = LiteRunner(choice.export, self.saved)
        else:
            self.probabilities = lambda path: file_probabilities(self.saved, [path])[0]
        self.threshold, self.threshold_note = unlike_threshold(run_dir, choice.record)

    @property
    def class_names(self) -> list[str]:
        return self.saved.info.class_names

    def classify(self, upload: Upload, folder: Path) -> dict:
        """Top-k classes, the heatmap and timings for one accepted upload."""
        path = folder / f"{safe_stem(upload.name)}{upload.suffix}"
        path.write_bytes(upload.data)
        started = time.perf_counter()
        probabilities = self.probabilities(path)
        seconds = time.perf_counter() - started
        order = np.argsort(probabilities)[::-1][:TOP_K]
        best = int(order[0])
        confidence = float(probabilities[best])
        result = {
            "file": upload.name,
            "ok": True,
            "label": self.class_names[best],
            "confidence": confidence,
            "top": [
                {"label": self.class_names[i], "probability": float(probabilities[i])}
                for i in order
            ],
            "unlike": confidence < self.threshold,
            "ms": round(seconds * 1000, 1),
            "width": upload.width,
            "height": upload.height,
        }
        result.update(self._heatmap(path, best))
        return result

    def _heatmap(self, path: Path, class_index: int) -> dict:
        cam = self.keras.cam()
        if cam is None:
            return {"gradcam": None, "gradcam_note": self.keras.cam_problem}
        started = time.perf_counter()
        inputs, pixels = read_image(self.saved, path)
        explanation = cam.explain(inputs, class_index=class_index)
        return {
            "gradcam": overlay_png(pixels, explanation.heatmap),
            "gradcam_layer": cam.layer_name,
            "gradcam_ms": round((time.perf_counter() - started) * 1000, 1),
        }


def overlay_png(pixels: np.ndarray, heatmap: np.ndarray) -> str:
    """The heatmap in the `jet` colours over what the model saw, as a PNG data URL for an <img>."""
    from matplotlib import colormaps

    shown = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    shown = np.asarray(shown.resize((OVERLAY_SIDE, OVERLAY_SIDE), Image.BILINEAR), np.float32)
    heat = colormaps["jet"](upsample(heatmap, (OVERLAY_SIDE, OVERLAY_SIDE)))[..., :3] * 255
    blended = (1 - HEAT_ALPHA) * shown + HEAT_ALPHA * heat
    buffer = io.BytesIO()
    Image.fromarray(blended.clip(0, 255).astype(np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class Classifiers:
    """The run's models, each loaded at its first use and kept; one inference at a time.

    TensorFlow on a laptop's CPU gains nothing from two photos scored at once, and a lock keeps
    Grad-CAM's traced function from being traced twice concurrently.
    """

    def __init__(self, run_dir: Path, choices: list[ModelChoice]):
        self.run_dir = run_dir
        self.choices = {c.key: c for c in choices}
        self.default = choices[0].key
        self._loaded: dict[str, Classifier] = {}
        self._keras: dict[Path, KerasModel] = {}  # a model and its LiteRT export share one
        self._lock = threading.Lock()

    def get(self, key: str) -> Classifier:
        with self._lock:
            return self._get(key)

    def _get(self, key: str) -> Classifier:
        if key not in self._loaded:
            choice = self.choices[key]
            if choice.path not in self._keras:
                self._keras[choice.path] = KerasModel(choice)
            self._loaded[key] = Classifier(self.run_dir, choice, self._keras[choice.path])
        return self._loaded[key]

    def warm_up(self, key: str) -> None:
        """Classifies a grey square once, so the first photo's latency is not TensorFlow tracing."""
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), (128, 128, 128)).save(buffer, format="PNG")
        self.classify_all(key, [Upload("warm-up.png", buffer.getvalue(), ".png", 64, 64)])

    def classify_all(self, key: str, uploads: list[Upload]) -> list[dict]:
        """Results for accepted uploads, in order; a photo the reader cannot decode is a refusal."""
        with self._lock, tempfile.TemporaryDirectory(prefix="serve-") as work:
            classifier = self._get(key)
            results = []
            for n, upload in enumerate(uploads):
                folder = Path(work) / str(n)  # one folder each: two uploads may share a name
                folder.mkdir()
                try:
                    results.append(classifier.classify(upload, folder))
                except Exception as err:  # one broken photo must not lose the others
                    results.append(refusal(upload.name, f"could not be read ({first_line(err)})"))
            return results


def refusal(name: str, message: str) -> dict:
    """A result row for a photo that was not classified; `message` is shown on the page."""
    return {
        "file": name,
        "ok": False,
        "error": message if message.startswith(name) else f"{name}: {message}",
    }

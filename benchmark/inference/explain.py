"""`explain`: Grad-CAM heatmaps that show where a benchmarked model looked for its answer.

An accuracy figure cannot tell a model that recognises a bottle from one that recognises the
background bottles happen to be photographed on; a heatmap over the image can. Images are fed
exactly as `predict` feeds them (`benchmark.inference.predict.model_inputs`: the sidecar's
preprocessing contract and input size, and for fusion models a caption from the file name), and the
map is drawn over the pixels the model was given. `benchmark/inference/gradcam.py` holds the math.
The probability in a caption is calibrated as `predict` shows it
(`run.calibrated.shown_probabilities`) but of the image as given: Grad-CAM explains one image, so a
cell's test-time views are not averaged here.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.errors import UsageError, first_line
from benchmark.figures import RIGHT, WRONG, plt, save_figure
from benchmark.inference.gradcam import Explanation, GradCam, upsample
from benchmark.inference.predict import (
    SavedModel,
    collect_images,
    load_saved_model,
    model_inputs,
    no_readable_image,
)
from benchmark.output import say
from benchmark.run.calibrated import shown_probabilities
from benchmark.run.folder import split_file
from benchmark.run.records import predictions_path
from data_pipeline import make_prediction_batch

DEFAULT_OUT = "explanations"
HEAT_ALPHA = 0.45  # enough colour to read the map, enough image left to see what it covers


@dataclass
class Explained:
    """One image, what the model saw of it (0..255 at its input size), its Grad-CAM and its true
    label if known."""

    path: Path
    pixels: np.ndarray
    explanation: Explanation
    true: str | None


def gradcam_for(saved: SavedModel, layer: str | None) -> GradCam:
    """Grad-CAM of a saved model's image branch; a text-only model has no image to explain."""
    if saved.info.modality == "text":
        raise UsageError(
            f"{str(saved.path)!r} is a text-only model; Grad-CAM explains models that see images"
        )
    return GradCam(saved.model, layer)


def explain_image(saved: SavedModel, cam: GradCam, inputs) -> Explanation:
    """Grad-CAM of one image, its probabilities calibrated with the cell's temperature (the class is
    the same)."""
    explanation = cam.explain(inputs)
    shown = shown_probabilities(saved.record, explanation.probabilities[None])[0]
    return dataclasses.replace(explanation, probabilities=shown)


def split_labels(saved: SavedModel) -> dict[Path, str]:
    """Labels of the images in the run's `splits.csv` (a K-fold run: its fold 0 file, which lists
    every image too) when the model sits in a run folder's `saved_models/`."""
    run_dir = saved.path.parent.parent
    files = [f for f in (split_file(run_dir), split_file(run_dir, 0)) if f.is_file()]
    if saved.path.parent.name != "saved_models" or not files:
        return {}
    table = pd.read_csv(files[0], keep_default_na=False, dtype=str)
    return {Path(path).resolve(): label for path, label in zip(table["path"], table["label"])}


def true_label(path: Path, labels: dict[Path, str], class_names: list[str]) -> str | None:
    """The run's own label for `path`, else its folder name when that is a class (`glass/x.jpg`),
    else None."""
    return labels.get(path.resolve()) or (
        path.parent.name if path.parent.name in class_names else None
    )


def read_image(saved: SavedModel, path: Path) -> tuple[object, np.ndarray]:
    """The model's inputs for `path`, built as `predict` builds them, and the pixels they came from.

    Fusion models get the caption `predict` would give them (from the file name): Grad-CAM then
    explains the image branch with the text branch held at that caption.
    """
    return model_inputs(saved, [path], caption=None), make_prediction_batch(
        [path], saved.info.image_size
    )[0]


def _verdict(item: Explained, class_names: list[str]) -> tuple[list[str], str]:
    """Caption lines for an image and their colour: green right, red wrong, black when the truth is
    unknown."""
    index = item.explanation.class_index
    pred = f"pred: {class_names[index]} ({item.explanation.probabilities[index]:.2f})"
    if item.true is None:
        return [pred], "black"
    return [f"true: {item.true}", pred], RIGHT if item.true == class_names[index] else WRONG


def _overlay(ax, item: Explained, title: str = "") -> None:
    """The heatmap, stretched to the input's size, over the pixels it explains."""
    ax.imshow(item.pixels.astype(np.uint8))
    heat = upsample(item.explanation.heatmap, item.pixels.shape[:2])
    ax.imshow(heat, cmap="jet", alpha=HEAT_ALPHA, vmin=0.0, vmax=1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def draw_explanation(item: Explained, class_names: list[str], layer: str, path: Path) -> Path:
    """The image beside the same image under its heatmap, titled with the predicted (and true)
    label."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(6.4, 3.6))
    left.imshow(item.pixels.astype(np.uint8))
    left.set_xticks([])
    left.set_yticks([])
    left.set_title(f"{item.path.name} (as the model saw it)", fontsize=8)
    _overlay(right, item, f"Grad-CAM at {layer}")
    lines, colour = _verdict(item, class_names)
    fig.suptitle("   ".join(lines), color=colour, fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)


def output_paths(files: list[Path], out_dir: Path) -> list[Path]:
    """`<stem>.gradcam.png` per file; files sharing a stem (`glass/1.jpg`, `paper/1.jpg`) get
    `<stem>_2...`."""
    used: set[str] = set()
    paths = []
    for file in files:
        stem, n = file.stem, 2
        while stem in used:
            stem, n = f"{file.stem}_{n}", n + 1
        used.add(stem)
        paths.append(out_dir / f"{stem}.gradcam.png")
    return paths


def explain_command(target: str, paths: list[str], out: str | None, layer: str | None) -> int:
    """Writes one Grad-CAM PNG per readable image and prints where; unreadable files are reported
    and skipped.

    Returns 0 when at least one image was explained; raises UsageError when none could be read
    (`no_readable_image`: one line on stderr and exit 2, with no skipped-file lines before it).
    """
    out_dir = Path(out or DEFAULT_OUT)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(
            f"explain --out {str(out_dir)!r} is an existing file; give a folder for the PNGs"
        )
    saved = load_saved_model(target)
    cam = gradcam_for(saved, layer)
    class_names = saved.info.class_names
    labels = split_labels(saved)
    files = collect_images(paths)
    say(f"model: {saved.path} ({saved.info.cell_id}); Grad-CAM at layer {cam.layer_name}")
    written, started, unreadable = 0, time.perf_counter(), []
    for file, png in zip(files, output_paths(files, out_dir)):
        try:
            inputs, pixels = read_image(saved, file)
        except Exception as err:  # an unreadable image must not stop the others
            unreadable.append((file, err))
            continue
        item = Explained(
            file, pixels, explain_image(saved, cam, inputs), true_label(file, labels, class_names)
        )
        draw_explanation(item, class_names, cam.layer_name, png)
        written += 1
        say(f"{file} -> {png} ({', '.join(_verdict(item, class_names)[0])})")
    if not written:
        raise no_readable_image(paths, unreadable)
    for file, err in unreadable:
        say(f"skipped unreadable file {file}: {first_line(err)}")
    seconds = (time.perf_counter() - started) / written
    say(f"{written} explanation(s) written to {out_dir} ({seconds:.2f} s per image)")
    return 0


def _grid_candidates(
    predictions: pd.DataFrame, class_names: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A cell's test mistakes and hits, each most confident first (the most telling of each)."""
    test = predictions[predictions["split"] == "test"]
    probabilities = test[[f"prob_{name}" for name in class_names]].to_numpy(float)
    test = test.assign(confidence=probabilities[np.arange(len(test)), test["pred"].to_numpy(int)])
    test = test.sort_values("confidence", ascending=False, kind="stable")
    return test[test["true"] != test["pred"]], test[test["true"] == test["pred"]]


def _explain_rows(
    saved: SavedModel, cam: GradCam, rows: pd.DataFrame, limit: int
) -> list[Explained]:
    """Up to `limit` explanations from `rows`, skipping files that can no longer be read."""
    names = saved.info.class_names
    items = []
    for path, true in zip(rows["path"], rows["true"]):
        if len(items) == limit:
            break
        try:
            inputs, pixels = read_image(saved, Path(path))
        except Exception:  # a moved or deleted image only leaves a gap the next candidate fills
            continue
        items.append(
            Explained(Path(path), pixels, explain_image(saved, cam, inputs), names[int(true)])
        )
    return items


def gradcam_grid(run_dir: Path, out_png: Path, n_correct: int = 4, n_wrong: int = 4) -> Path | None:
    """Grad-CAM of the run's best saved model on its most confident test mistakes (red) and hits
    (green).

    For the run report. The model is the one `predict` uses (`best_model_file`), and the images
    come from that cell's predictions file. Returns None when there is nothing to draw: no saved
    model (`--save-models none`), a text-only best model, no predictions file or no readable test
    image.
    """
    run_dir = Path(run_dir)
    try:
        saved = load_saved_model(str(run_dir))
        cam = gradcam_for(saved, None)
    except UsageError:
        return None
    predictions = predictions_path(run_dir, saved.info.cell_id)
    if not predictions.is_file():
        return None
    wrong, right = _grid_candidates(pd.read_csv(predictions), saved.info.class_names)
    items = _explain_rows(saved, cam, wrong, n_wrong) + _explain_rows(saved, cam, right, n_correct)
    if not items:
        return None
    title = (
        f"Grad-CAM of {saved.info.cell_id or saved.path.stem} at {cam.layer_name}: "
        "most confident mistakes (red), then hits (green)"
    )
    return _draw_grid(items, saved.info.class_names, title, Path(out_png))


def _draw_grid(
    items: list[Explained], class_names: list[str], title: str, path: Path, columns: int = 4
) -> Path:
    """Heatmap overlays in rows of `columns`, each titled and framed in its verdict's colour."""
    columns = min(columns, len(items))
    rows = math.ceil(len(items) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 3.0 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, item in zip(axes.ravel(), items):
        ax.axis("on")
        lines, colour = _verdict(item, class_names)
        _overlay(ax, item)
        ax.set_title("\n".join(lines), fontsize=8, color=colour)
        for spine in ax.spines.values():
            spine.set_edgecolor(colour)
            spine.set_linewidth(3 if colour == WRONG else 1.5)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)

"""`predict`: classify new images with a benchmarked model, using its own preprocessing and classes.

A saved model is self-describing: `saved_models/<name>.keras` has a `<name>.json` beside it with
the class names, the preprocessing contract, the input size and (for text models) the encoder.
Its probabilities are shown as its cell was scored: averaged over the cell's test-time views and
divided by the temperature fitted on the cell's validation split
(`run.calibrated.shown_probabilities`), read from the run's cell record when the model sits in a run
folder, else from the sidecar.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.errors import UsageError, first_line
from benchmark.run.calibrated import shown_probabilities, with_calibration
from benchmark.run.records import (
    CellRecord,
    SavedModelInfo,
    load_records,
    record_path,
    validation_rank_key,
)
from benchmark.run.saved_models import saved_model_file
from data_pipeline import (
    IMAGE_EXTENSIONS,
    caption_from_filename,
    image_problem,
    make_prediction_batch,
)
from models import preprocess_function, register_custom_layers


@dataclass
class SavedModel:
    """A loaded Keras model, the sidecar that says how to feed it, and its cell's record (how it was
    scored).
    """

    model: object
    path: Path
    info: SavedModelInfo
    record: CellRecord | None = None

    def __post_init__(self) -> None:
        if self.record is None:
            self.record = cell_record(self.path, self.info)


def cell_record(path: Path, info: SavedModelInfo) -> CellRecord:
    """The record of the cell a saved model came from, calibration included (completed for old
    runs).

    A model in a run folder's `saved_models/` reads its run's `cells/<cell_id>.json`; a model file
    copied elsewhere gets a record made from its sidecar (its test-time views and temperature).
    """
    run_dir = Path(path).parent.parent
    record_file = record_path(run_dir, info.cell_id)
    if Path(path).parent.name == "saved_models" and record_file.is_file():
        try:
            return with_calibration(
                run_dir, CellRecord.from_json(json.loads(record_file.read_text()))
            )
        except (OSError, ValueError, KeyError, TypeError):
            pass  # an unreadable record: the sidecar still says how the model was scored
    calibration = {} if info.temperature is None else {"temperature": info.temperature}
    return CellRecord(
        cell_id=info.cell_id,
        index=0,
        model=info.model,
        alpha=math.nan if info.alpha is None else info.alpha,
        seed=-1 if info.seed is None else info.seed,
        class_names=info.class_names,
        modality=info.modality,
        tta=info.tta,
        calibration=calibration,
    )


def best_model_file(run_dir: Path) -> Path:
    """The saved model of the run's top-ranked cell (by validation, as the leaderboard ranks)."""
    records = [r for r in load_records(run_dir) if r.ok]
    if not records:
        raise UsageError(f"run folder {str(run_dir)!r} has no finished cells to predict with")
    ranked = sorted(records, key=validation_rank_key, reverse=True)
    found = saved_model_file(run_dir, ranked[0])
    if found is not None:
        return found
    saved = run_dir / "saved_models"
    raise UsageError(
        f"no saved model for the best cell ({ranked[0].cell_id}) in {str(saved)!r}: models are "
        "saved only while a cell trains, so re-running this finished run saves nothing; train it "
        "again into a new --output with --save-models best (the default) or all, or pass a "
        "MODEL.keras file"
    )


def load_saved_model(target: str) -> SavedModel:
    """`target` is a run folder (its best cell) or a `.keras` file with its `.json` sidecar."""
    path = Path(target)
    if path.is_dir():
        path = best_model_file(path)
    if path.suffix != ".keras" or not path.is_file():
        raise UsageError(f"{target!r} is neither a run folder nor a .keras model file")
    return load_model_file(path)


def load_model_file(path: Path) -> SavedModel:
    """A saved `.keras` model with its sidecar; keras-hub and our own layers registered so every
    family loads.
    """
    import keras

    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        raise UsageError(
            f"{str(sidecar)!r} is missing: a model needs its sidecar (class names, preprocessing) "
            "to predict"
        )
    import keras_hub  # noqa: F401  (registers keras-hub layers so text and fusion models deserialize)

    try:
        info = SavedModelInfo.read(sidecar)
    except (OSError, ValueError, TypeError) as err:
        raise UsageError(
            f"sidecar {str(sidecar)!r} is unreadable or incomplete ({first_line(err)}); save the "
            "model again"
        ) from err
    register_custom_layers()
    return SavedModel(model=keras.saving.load_model(path, compile=False), path=path, info=info)


def collect_images(paths: list[str]) -> list[Path]:
    """Image files named directly or found under folders (recursively), in a stable order."""
    found: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS))
        elif path.exists():
            found.append(path)
        else:
            raise UsageError(f"{item!r} does not exist")
    if not found:
        raise UsageError(f"no images found in {', '.join(paths)}")
    return found


def no_readable_image(paths: list[str], unreadable: list[tuple[Path, BaseException]]) -> UsageError:
    """The error when not one of the files found could be read: one line naming what was passed and
    why.

    A folder of non-images is a mistake in the command (exit 2), not a prediction that failed; a
    few unreadable files among good ones are only reported and skipped.
    """
    reasons = [
        f"{file.name} ({image_problem(file) or first_line(err)})" for file, err in unreadable[:5]
    ]
    more = f" and {len(unreadable) - 5} more" if len(unreadable) > 5 else ""
    return UsageError(
        f"no readable image in {', '.join(paths)} ({', '.join(reasons)}{more}); "
        "pass jpg, jpeg, png, bmp, gif or webp images or folders of them"
    )


@functools.lru_cache(maxsize=4)
def caption_tokenizer(encoder: str, sequence_length: int):
    """The encoder's tokenizer and a packer to `sequence_length`, loaded once per encoder (not once
    per file).
    """
    import keras_hub

    tokenizer = keras_hub.models.Tokenizer.from_preset(encoder)
    packer = keras_hub.layers.StartEndPacker(
        sequence_length=sequence_length,
        start_value=tokenizer.start_token_id,
        end_value=tokenizer.end_token_id,
        pad_value=tokenizer.pad_token_id,
        return_padding_mask=True,
    )
    return tokenizer, packer


def model_inputs(
    saved: SavedModel, files: list[Path], caption: str | list[str] | None, view: int = 0
):
    """The model's inputs for `files`: preprocessed pixels (test-time view `view`) and, for text
    models, tokenized captions.

    `caption` is one caption for every file, a list with one per file, or None (each from its file
    name).
    """
    info = saved.info
    modality = info.modality
    inputs = {}
    if modality != "text":
        inputs["image"] = make_prediction_batch(
            files, info.image_size, preprocess_function(info.preprocess), view=view
        )
    if modality != "image":
        tokenizer, packer = caption_tokenizer(info.text_encoder, info.sequence_length)
        if isinstance(caption, list):
            captions = caption
        else:
            captions = [caption if caption is not None else caption_from_filename(f) for f in files]
        token_ids, mask = packer(tokenizer(captions))
        inputs.update(
            token_ids=np.asarray(token_ids), padding_mask=np.asarray(mask).astype("int32")
        )
    return inputs["image"] if list(inputs) == ["image"] else inputs


def file_probabilities(
    saved: SavedModel, files: list[Path], caption: str | list[str] | None = None
) -> np.ndarray:
    """What the user is shown for `files`: the softmax averaged over the cell's test-time views,
    then calibrated.

    Every consumer (predict, cross-dataset evaluation) goes through this one function, so the cell's
    views and temperature are applied once, here.
    """
    views = saved.record.tta if saved.info.modality != "text" else 0
    raw = np.mean(
        [
            np.asarray(
                saved.model.predict(model_inputs(saved, files, caption, view), verbose=0),
                dtype=np.float64,
            )
            for view in range(max(views, 1))
        ],
        axis=0,
    )
    return shown_probabilities(saved.record, raw)


def probabilities_for_files(
    saved: SavedModel, files: list[Path], captions: list[str] | None = None, *, batch_size: int = 32
) -> np.ndarray:
    """What the user is shown for many readable files, `batch_size` at a time (memory stays
    bounded).
    """
    chunks = []
    for start in range(0, len(files), batch_size):
        part = files[start : start + batch_size]
        caption = None if captions is None else captions[start : start + batch_size]
        chunks.append(file_probabilities(saved, part, caption))
    return np.concatenate(chunks) if chunks else np.zeros((0, len(saved.info.class_names)))


def predict_files(
    saved: SavedModel, paths: list[str], *, top_k: int = 3, caption: str | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """Top-k labels and probabilities per readable file; unreadable files are reported, not fatal.

    When no file at all is readable, a UsageError (`no_readable_image`).
    """
    classes = saved.info.class_names
    top_k = max(1, min(top_k, len(classes)))
    rows, problems, unreadable = [], [], []
    for file in collect_images(paths):
        try:
            probabilities = file_probabilities(saved, [file], caption)[0]
        except Exception as err:  # an unreadable image must not stop the others
            problems.append(f"{file}: {first_line(err)}")
            unreadable.append((file, err))
            continue
        order = np.argsort(probabilities)[::-1][:top_k]
        row = {"file": str(file)}
        for rank, index in enumerate(order, 1):
            row[f"label_{rank}"] = classes[index]
            row[f"prob_{rank}"] = float(probabilities[index])
        rows.append(row)
    if not rows:
        raise no_readable_image(paths, unreadable)
    return pd.DataFrame(rows), problems

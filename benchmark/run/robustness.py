"""Corruption robustness of a trained cell: its test images under `data_pipeline.corruptions`.

After a cell trains (RunConfig `robustness`, on by default) and in `run_benchmark.py robustness
RUN`, each image model is scored on a fixed subset of its test split: every image clean, and under
every corruption at ONE severity, the severities rotated over the images (`severity_plan`), so each
of the 45 (corruption, severity) points gets about a fifth of the images and an image costs 10
forward passes rather than 46. One file per cell, `robustness/<cell_id>.csv`, is the commit point
(parallel Slurm tasks never write the same file); `robustness.csv` is their concatenation, rebuilt
after each write and by `report`.

Cheap by design, so it can run after every cell: at most `PER_CLASS` test images per class (each
row says in `n` how many images stand behind it), the plain view only (no test-time views; the
temperature does not change the argmax), each corrupted set made once per image size and kept in
memory for the next cell of that size (up to `MEMO_BYTES`), and predicted in large batches.
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from benchmark.errors import error_line
from benchmark.io import write_csv_atomic
from benchmark.output import say
from data_pipeline import SplitTable, make_prediction_batch
from data_pipeline.corruptions import CORRUPTIONS, MAX_SEVERITY, corrupt, image_key
from models import preprocess_function

# Test images per class scored (fewer when a class has fewer). At 10 passes an image, 8 a class
# keep even a bank-reusing Lite0 cell near 15 % of its training time; 10 measured 19 %
# (docs/shift-robustness.md, "Cost").
PER_CLASS = 8
CLEAN = "none"  # the `corruption` of the clean-image row (severity 0)
PREDICT_BATCH = 128
PREDICT_BYTES = 256 * 2**20  # float32 images handed to one predict call
MEMO_BYTES = 512 * 2**20  # corrupted sets kept for the next cell of the same size


@dataclass
class RobustnessRow:
    """One cell under one corruption at one severity (`none`, 0: the same images clean)."""

    cell_id: str
    model: str
    alpha: float
    seed: int
    corruption: str
    severity: int
    accuracy: float
    macro_f1: float
    n: int  # images behind this point: all for the clean row, about a fifth for a corrupted one


ROBUSTNESS_COLUMNS = [f.name for f in dataclasses.fields(RobustnessRow)]


@dataclass
class ScoredModel:
    """A model to score and how to feed it: its cell's record fields and preprocessing contract."""

    cell_id: str
    model_name: str
    alpha: float
    seed: int
    model: object
    preprocess: str
    class_names: list[str]


def image_sets() -> list[str]:
    """The forward passes an image costs: clean first, then each corruption once."""
    return [CLEAN, *CORRUPTIONS]


def scored_subset(split: SplitTable, per_class: int = PER_CLASS) -> pd.DataFrame:
    """Up to `per_class` test images of each class, chosen by content hash (stable, unbiased by
    file names), in file order; `rotation` is each image's place in (label, content hash) order,
    which `severity_plan` turns into its severities."""
    test = split.subset("test").reset_index(drop=True)
    chosen = (
        test.assign(_order=range(len(test)))
        .sort_values(["label", "content_hash", "_order"])
        .groupby("label", sort=False)
        .head(per_class)
    )
    chosen = chosen.assign(rotation=range(len(chosen))).sort_values("_order")
    return chosen.drop(columns="_order").reset_index(drop=True)


def severity_plan(subset: pd.DataFrame) -> np.ndarray:
    """(images, corruptions) array of the one severity (1..5) each image is seen at per corruption:
    (rotation + the corruption's index) mod 5, + 1.

    A class's images are consecutive in the rotation, so within a class, and over the whole
    subset, the five severities of a corruption get image counts that differ by at most one; the
    corruption's index shifts the start, so an image meets different severities across corruptions.
    """
    rotation = subset["rotation"].to_numpy(dtype=int)
    return (rotation[:, None] + np.arange(len(CORRUPTIONS))[None, :]) % MAX_SEVERITY + 1


class CorruptedSets:
    """The subset's images at one size, clean and under each corruption (every image at its
    `severity_plan` severity), each set made once.

    Entries are uint8 (as photos are) and kept in a process-wide memo, so the next cell of the
    same image size and test subset reuses them instead of corrupting again.
    """

    _memo: OrderedDict = OrderedDict()

    def __init__(self, subset: pd.DataFrame, image_size: int):
        self.paths = list(subset["path"])
        self.keys = [image_key(h) for h in subset["content_hash"]]
        self.image_size = int(image_size)
        self.severities = severity_plan(subset)
        plan = self.severities.tobytes()
        self.identity = (self.image_size, tuple(subset["content_hash"]), plan)
        self._clean: np.ndarray | None = None  # every corruption starts from it: never forgotten

    def images(self, name: str) -> np.ndarray:
        memo_key = (self.identity, name)
        if memo_key in self._memo:
            return self._memo[memo_key]
        if name == CLEAN and self._clean is not None:
            return self._clean
        if name == CLEAN:
            batch = make_prediction_batch(self.paths, self.image_size)
            images = self._clean = np.clip(np.rint(batch), 0, 255).astype(np.uint8)
        else:
            clean, column = self.images(CLEAN), self.severity_column(name)
            images = np.empty_like(clean)
            for severity in np.unique(column):  # `corrupt` depends on each image alone
                at = np.flatnonzero(column == severity)
                keys = [self.keys[i] for i in at]
                images[at] = corrupt(clean[at], name, int(severity), keys)
        self._remember(memo_key, images)
        return images

    def severity_column(self, name: str) -> np.ndarray:
        """Each image's severity under corruption `name`."""
        return self.severities[:, CORRUPTIONS.index(name)]

    def _remember(self, memo_key: tuple, images: np.ndarray) -> None:
        """Keeps `images` if they fit the budget, after forgetting other sizes' sets; a full memo
        keeps its first entries (forgetting the oldest would make every cell miss in turn)."""
        memo = self._memo
        for other in [k for k in memo if k[0] != self.identity]:
            if sum(a.nbytes for a in memo.values()) + images.nbytes <= MEMO_BYTES:
                break
            del memo[other]
        if sum(a.nbytes for a in memo.values()) + images.nbytes <= MEMO_BYTES:
            memo[memo_key] = images


def array_inputs(scored: ScoredModel, images: np.ndarray, view: int = 0):
    """`images` (0..255) as the model takes them: float32, test-time view `view` made on the
    0..255 pixels (`data_pipeline.tta`; 0 is the image itself), then its own preprocessing."""
    import tensorflow as tf

    from data_pipeline.tta import tta_view

    preprocess = preprocess_function(scored.preprocess)
    batch = tf.constant(images, tf.float32)
    batch = tta_view(batch, view) if view else batch
    return batch if preprocess is None else preprocess(batch)


def predicted_labels(scored: ScoredModel, images: np.ndarray) -> np.ndarray:
    """The model's class per image (plain view), `PREDICT_BATCH` images at a time."""
    inputs = array_inputs(scored, images)
    probabilities = scored.model.predict(inputs, batch_size=PREDICT_BATCH, verbose=0)
    return np.argmax(np.asarray(probabilities), axis=1)


def set_groups(images_per_set: int, image_bytes: int) -> list[list[str]]:
    """`image_sets()` in runs whose images, stacked, fit `PREDICT_BYTES` as float32: one predict
    call per run rather than per set (Keras' per-call overhead dwarfs a few small images)."""
    per_group = max(1, PREDICT_BYTES // max(1, images_per_set * image_bytes * 4))
    every = image_sets()
    return [every[i : i + per_group] for i in range(0, len(every), per_group)]


def score_row(scored: ScoredModel, condition, truth, predicted) -> RobustnessRow:
    name, severity = condition
    return RobustnessRow(
        cell_id=scored.cell_id,
        model=scored.model_name,
        alpha=float(scored.alpha),
        seed=int(scored.seed),
        corruption=name,
        severity=severity,
        accuracy=float(np.mean(predicted == truth)) if len(truth) else float("nan"),
        macro_f1=float(
            f1_score(
                truth,
                predicted,
                labels=range(len(scored.class_names)),
                average="macro",
                zero_division=0,
            )
        ),
        n=len(truth),
    )


def point_rows(scored: ScoredModel, name: str, sets: CorruptedSets, truth, predicted):
    """The rows one image set gives: the clean row on every image, or one row per severity of a
    corruption on the images seen at it (a severity no image was given has no row)."""
    if name == CLEAN:
        return [score_row(scored, (CLEAN, 0), truth, predicted)]
    column = sets.severity_column(name)
    seen = [(severity, column == severity) for severity in range(1, MAX_SEVERITY + 1)]
    return [
        score_row(scored, (name, severity), truth[at], predicted[at])
        for severity, at in seen
        if at.any()
    ]


def scored_sets(
    split: SplitTable, image_size: int, per_class: int
) -> tuple[CorruptedSets, np.ndarray]:
    """The scored subset's image sets and its true class indices, in the subset's order."""
    subset = scored_subset(split, per_class)
    index = {name: i for i, name in enumerate(split.class_names)}
    truth = np.array([index[label] for label in subset["label"]], dtype=int)
    return CorruptedSets(subset, image_size), truth


def score_models(
    models: list[ScoredModel], split: SplitTable, image_size: int, per_class: int = PER_CLASS
) -> dict[str, list[RobustnessRow]]:
    """Rows per cell id for models that share an image size and split: each corrupted set is made
    once and predicted by every model."""
    sets, truth = scored_sets(split, image_size, per_class)
    rows: dict[str, list[RobustnessRow]] = {m.cell_id: [] for m in models}
    n = len(truth)
    for group in set_groups(n, int(image_size) ** 2 * 3):
        stacked = np.concatenate([sets.images(name) for name in group])
        for scored in models:
            predicted = predicted_labels(scored, stacked) if n else np.zeros(0, int)
            for k, name in enumerate(group):
                part = predicted[k * n : (k + 1) * n]
                rows[scored.cell_id].extend(point_rows(scored, name, sets, truth, part))
    return rows


# How a set of rows was scored: the plain model, the model with its BatchNorm statistics shifted
# to each set (`robustness RUN --adapt-bn`), or the mean over test-time views (`--tta N`). Each
# variant keeps its own per-cell folder under `robustness/` and its own table, so one never
# overwrites another.
PLAIN, BN_ADAPTED, TTA = "plain", "bn", "tta"
VARIANT_FOLDERS = {PLAIN: "", BN_ADAPTED: "bn_adapted", TTA: "tta"}
VARIANT_TABLES = {
    PLAIN: "robustness.csv",
    BN_ADAPTED: "robustness_bn.csv",
    TTA: "robustness_tta.csv",
}


def parts_dir(run_dir: Path, variant: str = PLAIN) -> Path:
    """Where each cell's rows are committed: `robustness/`, or its variant's folder inside it
    (`robustness/bn_adapted/`, `robustness/tta/`)."""
    folder = Path(run_dir) / "robustness"
    return folder / VARIANT_FOLDERS[variant] if VARIANT_FOLDERS[variant] else folder


def table_path(run_dir: Path, variant: str = PLAIN) -> Path:
    return Path(run_dir) / VARIANT_TABLES[variant]


def scored_cell_ids(run_dir: Path, variant: str = PLAIN) -> set[str]:
    """Cells whose robustness rows (of this variant) are already written."""
    folder = parts_dir(run_dir, variant)
    return {p.stem for p in folder.glob("*.csv")} if folder.is_dir() else set()


def write_cell_rows(
    run_dir: Path, cell_id: str, rows: list[RobustnessRow], variant: str = PLAIN
) -> None:
    """Commits one cell's rows, then rebuilds the variant's table (`robustness.csv`, ...)."""
    frame = pd.DataFrame([dataclasses.asdict(r) for r in rows], columns=ROBUSTNESS_COLUMNS)
    write_csv_atomic(parts_dir(run_dir, variant) / f"{cell_id}.csv", frame)
    collect(run_dir, variant)


def collect(run_dir: Path, variant: str = PLAIN) -> pd.DataFrame:
    """Every cell's rows of one variant in one frame, written to its table (`robustness.csv`,
    `robustness_bn.csv`, `robustness_tta.csv`); nothing is written when none exist."""
    folder = parts_dir(run_dir, variant)
    files = sorted(folder.glob("*.csv")) if folder.is_dir() else []
    frames = []
    for file in files:
        try:
            part = pd.read_csv(file)
        except (OSError, ValueError):
            continue  # a damaged part: `robustness RUN --force` writes it again
        if list(part.columns) == ROBUSTNESS_COLUMNS:
            frames.append(part)
    if not frames:
        return pd.DataFrame(columns=ROBUSTNESS_COLUMNS)
    frame = pd.concat(frames, ignore_index=True)
    write_csv_atomic(table_path(run_dir, variant), frame)
    return frame


def mean_corrupted(rows: list[RobustnessRow]) -> tuple[float, float]:
    """(clean accuracy, mean accuracy over the corrupted points) of one cell: a mean over the
    (corruption, severity) rows, not over predictions, so every point weighs the same whatever its
    `n` (as `results/robustness.py` computes `corrupt_accuracy`)."""
    clean = [r.accuracy for r in rows if r.corruption == CLEAN]
    corrupted = [r.accuracy for r in rows if r.corruption != CLEAN]
    return (clean[0] if clean else float("nan")), float(np.mean(corrupted))


def score_trained_cell(ctx, record, model) -> None:
    """The hook after a cell trains: scores its in-memory model, unless `robustness` is off.

    Image models only (text and fusion models read captions; late fusion has no model). A failure
    here is a warning, never a failed cell: its record is already committed, and `robustness RUN`
    can score it later from its saved model.
    """
    if ctx.config.robustness != "on" or model is None or not record.ok:
        return
    if record.modality != "image" or not record.image_size:
        return
    started = time.perf_counter()
    try:
        split = ctx.for_fold(record.fold).split
        scored = ScoredModel(
            record.cell_id,
            record.model,
            record.alpha,
            record.seed,
            model,
            record.preprocess,
            record.class_names,
        )
        rows = score_models([scored], split, record.image_size)[record.cell_id]
        write_cell_rows(ctx.run_dir, record.cell_id, rows)
    except Exception as err:  # an extra figure must not cost the run its cell
        say(
            f"warning: {record.cell_id}: corruption robustness not scored "
            f"({error_line(err)}); run `run_benchmark.py robustness {ctx.run_dir}`"
        )
        return
    seconds = time.perf_counter() - started
    clean, corrupted = mean_corrupted(rows)
    train = (record.timings or {}).get("train_seconds")
    share = f", {seconds / train:.0%} of its training time" if train else ""
    say(
        f"{record.cell_id}: corrupted accuracy {corrupted:.4f} (clean {clean:.4f}, "
        f"{rows[0].n} test images) in {seconds:.1f} s{share}"
    )

"""Runs the grid: resolves the split once, trains each unfinished cell, writes one record per cell.

A run folder holds `config.yaml` (the resolved configuration), `splits.csv` (the one split every
cell uses) and `cells/<cell-id>.json`. Re-running the same command skips finished cells, so a run
killed at any moment loses at most the cell in progress. An exception inside one cell becomes a
failed record and the sweep goes on; errors the user must fix stop the run before training.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from benchmark.config import RunConfig, config_from_dict, differing_keys
from benchmark.environment import environment_info
from benchmark.errors import USER_ERRORS, UsageError
from benchmark.evaluate import classification_metrics, predict_probabilities
from benchmark.grid import Cell, build_grid
from benchmark.devices import jit_compile_setting, resolve_precision, resolve_strategy
from benchmark.head_features import cached_features, feature_dataset, features_key, head_model, supports_cached_features
from benchmark.backup import PhaseCheckpoint
from benchmark.recipe import CachedHeadPhase, RecipeSettings, train_two_phase
from benchmark.records import (
    finished_cell_ids, load_records, predictions_path, record_path, validation_rank_key, write_csv_atomic,
    write_json_atomic, write_text_atomic,
)
from data_pipeline import (
    AugmentConfig, SplitTable, cache_location, caption_leak_fraction, damped_class_weights, make_dataset, read_split_file,
    sample_data_dir, scan_dataset, split_dataset, write_split_file,
)
from benchmark.late_fusion import choose_image_weight, confidence_selection, weighted_average
from models import (
    BuildSpec, HeadConfig, SimpleCNNConfig, TextConfig, build_model, get_entry, preprocess_function, resolve_model_names,
)


@dataclass
class RunContext:
    """A prepared run: its configuration, folder, the one split and the grid."""

    config: RunConfig
    run_dir: Path
    split: SplitTable
    cells: list[Cell]
    caption_warning: str = ""


def prepare_run(config: RunConfig, run_dir: Path, *, force: bool = False, write: bool = True) -> RunContext:
    """Resolves model names and the split, and checks or saves the run folder's configuration."""
    config = dataclasses.replace(config, models=resolve_model_names(config.models))
    SimpleCNNConfig(**config.simple_cnn) if config.simple_cnn else None  # a bad knob fails now, naming it
    run_dir = Path(run_dir)
    config_file = run_dir / "config.yaml"
    if config_file.is_file():
        saved = yaml.safe_load(config_file.read_text()) or {}
        changed = differing_keys(saved, config.to_dict())
        if changed and not force:
            raise UsageError(
                f"run folder {str(run_dir)!r} was started with a different configuration ({', '.join(changed)}); "
                "use another --output, or --force to continue with the new one"
            )
    split = resolve_split(config, run_dir, write=write)
    caption_warning = check_captions(config, split)
    if write:
        write_text_atomic(config_file, yaml.safe_dump(config.to_dict(), sort_keys=False))
    return RunContext(config, run_dir, split, build_grid(config), caption_warning)


def check_captions(config: RunConfig, split: SplitTable) -> str:
    """Text models need captions; captions that name the class leak the label. Returns the warning, if any."""
    text_models = [m for m in config.models if get_entry(m).modality != "image"]
    if not text_models:
        return ""
    captions = split.table["caption"].fillna("").astype(str).str.strip()
    if (captions == "").mean() > 0.5:
        raise UsageError(
            f"{', '.join(text_models)} need captions, but most images have none; give a CSV manifest with a caption "
            "column, or file names that describe the object (paper_gift_bag_1859.png)"
        )
    leak = caption_leak_fraction(split.table, split.class_names)
    if leak <= 0.5:
        return ""
    warning = (f"{leak:.0%} of captions contain their class name: the text leaks the label, so text and fusion "
               "scores overstate what a caption alone can tell")
    print(f"warning: {warning}", file=sys.stderr)
    return warning


def resolve_split(config: RunConfig, run_dir: Path, *, write: bool = True) -> SplitTable:
    """The run's split: its own `splits.csv` on resume, else `--split-file`, else a fresh leak-free split."""
    own = run_dir / "splits.csv"
    if own.is_file():
        return read_split_file(own)
    if config.split_file:
        split = read_split_file(Path(config.split_file))
    else:
        scanned = scan_dataset(config.data or sample_data_dir(), skip_corrupt=config.skip_corrupt)  # logs its warnings
        split = split_dataset(scanned, ratios=tuple(config.split), seed=config.split_seed)
        if write and scanned.skipped:
            write_csv_atomic(run_dir / "skipped_files.csv", pd.DataFrame(scanned.skipped, columns=["path", "reason"]))
    if write:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_split_file(split, own)
    return split


def recipe_settings(config: RunConfig, model_name: str) -> RecipeSettings:
    entry = get_entry(model_name)
    layers = entry.fine_tune_layers if config.fine_tune_layers is None else config.fine_tune_layers
    return RecipeSettings(
        initial_epochs=config.initial_epochs, fine_tune_epochs=config.fine_tune_epochs, initial_lr=config.initial_lr,
        fine_tune_lr=config.fine_tune_lr, fine_tune_layers=layers, text_fine_tune_layers=config.text_fine_tune_layers,
        weight_decay=config.weight_decay, label_smoothing=config.label_smoothing, lr_schedule=config.lr_schedule,
        warmup_epochs=config.warmup_epochs, patience=config.patience, monitor=config.monitor,
        jit_compile=jit_compile_setting(),
    )


def build_spec(config: RunConfig, num_classes: int) -> BuildSpec:
    return BuildSpec(
        num_classes=num_classes, image_size=config.image_size, weights=config.weights,
        head=HeadConfig(units=tuple(config.head_units), dropout=config.dropout),
        simple_cnn=SimpleCNNConfig(**config.simple_cnn),
        text=TextConfig(encoder=config.text_encoder, sequence_length=config.sequence_length,
                        fine_tune_layers=config.text_fine_tune_layers, pooling=config.text_pooling,
                        branch_units=config.fusion_units, branch_dropout=config.fusion_dropout),
    )


@dataclass
class CellInputs:
    """How the data pipeline must feed one model: its size, preprocessing, text tokenizer and cache folder.

    `cache_dir` receives a split's decoded images when they are too large for memory (`cache_location`).
    """

    image_size: int
    preprocess: object
    modality: str
    cache_dir: Path
    tokenizer: object = None
    sequence_length: int = 32

    @classmethod
    def for_model(cls, config: RunConfig, entry, built, cache_dir: Path) -> CellInputs:
        """How `config` feeds the registry `entry` built as `built` (its tokenizer, if any)."""
        return cls(image_size=config.image_size or entry.input_size, preprocess=preprocess_function(entry.preprocess),
                   modality=entry.modality, cache_dir=cache_dir, tokenizer=built.tokenizer,
                   sequence_length=config.sequence_length)

    def dataset(self, split: SplitTable, part: str, batch_size: int, **kwargs):
        frame = split.subset(part)
        cache = cache_location(len(frame), self.image_size, self.cache_dir / part)
        return make_dataset(frame, split.class_names, image_size=self.image_size, batch_size=batch_size,
                            preprocess=self.preprocess, cache=cache, inputs=self.modality,
                            tokenizer=self.tokenizer, sequence_length=self.sequence_length, **kwargs)


def run_cell(ctx: RunContext, cell: Cell, *, verbose: int | str = "auto") -> dict:
    """Trains and evaluates one cell and returns its (successful) record."""
    import keras

    entry = get_entry(cell.model)
    if entry.components:
        return run_late_fusion_cell(ctx, cell)
    config, split = ctx.config, ctx.split
    keras.backend.clear_session()
    keras.utils.set_random_seed(cell.seed)
    precision = resolve_precision(config.precision)
    keras.mixed_precision.set_global_policy(precision)
    strategy = resolve_strategy(config.strategy)
    batch_size = config.batch_size * strategy.num_replicas_in_sync  # global batch: per-replica x replicas
    started = time.perf_counter()

    with strategy.scope():  # build and compile inside the scope so variables are mirrored
        built = build_model(cell.model, build_spec(config, len(split.class_names)))
        inputs = CellInputs.for_model(config, entry, built, cache_dir(ctx.run_dir, cell.cell_id))
        train_frame = split.subset("train")
        train_labels = split.label_indices("train")
        class_weights = damped_class_weights(np.bincount(train_labels, minlength=len(split.class_names)), cell.alpha)
        augment = AugmentConfig(strength=config.augment_strength) if config.augment and entry.modality != "text" else None
        train_ds = inputs.dataset(split, "train", batch_size, augment=augment, sample_weights=class_weights,
                                  shuffle_seed=cell.seed)
        val_ds = inputs.dataset(split, "val", batch_size)
        cached_head = None
        if use_cached_features(config, built):
            cached_head = cached_head_phase(ctx, cell, built, inputs, batch_size, class_weights)
        steps = int(np.ceil(len(train_frame) / batch_size))
        work = work_dir(ctx.run_dir, cell.cell_id)
        if work.is_dir():
            print(f"resuming {cell.cell_id} from its backup in {work}", flush=True)
        training = train_two_phase(built, train_ds, val_ds, recipe_settings(config, cell.model), steps_per_epoch=steps,
                                   verbose=verbose, cached_head=cached_head, checkpoint=PhaseCheckpoint(work))

    eval_start = time.perf_counter()
    probabilities = {part: predict_probabilities(built.model, inputs.dataset(split, part, batch_size))
                     for part in ("val", "test") if not split.subset(part).empty}
    record = evaluation_record(ctx, cell, probabilities)
    trained_images = len(train_frame) * sum(p.epochs for p in training.phases)
    record.update({
        "weights": built.weights if (entry.pretrained or entry.modality != "image") else "none (trained from scratch)",
        "image_size": inputs.image_size if entry.modality != "text" else None,
        "preprocess": entry.preprocess,
        "class_weights": [float(w) for w in class_weights],
        "head_features": "cached" if cached_head is not None else "online",
        "precision": precision,
        "strategy": type(strategy).__name__,
        "replicas": strategy.num_replicas_in_sync,
        "phases": [{k: v for k, v in dataclasses.asdict(p).items() if k != "history"} for p in training.phases],
        "phase2_note": training.phase2_note,
        "params": {"total": int(built.model.count_params()),
                   "trainable_by_phase": [p.trainable_params for p in training.phases]},
        "timings": {
            "train_seconds": training.seconds,
            "train_images_per_second": trained_images / training.seconds if training.seconds else None,
            "eval_seconds": time.perf_counter() - eval_start,
            "total_seconds": time.perf_counter() - started,
        },
        "history": {**training.history, "phase_boundary": training.phase_boundary},
        "_model": built.model,
    })
    return record


def use_cached_features(config: RunConfig, built) -> bool:
    """`cached` where the model allows it; `auto` only without augmentation (augmented images change every epoch)."""
    wanted = config.head_features == "cached" or (config.head_features == "auto" and not config.augment)
    return wanted and supports_cached_features(built)


def cached_head_phase(ctx: RunContext, cell: Cell, built, inputs: CellInputs, batch_size: int,
                      class_weights: np.ndarray) -> CachedHeadPhase:
    """Phase-1 data from the backbone features stored in the run folder (computed by the first alpha cell)."""
    split, parts = ctx.split, {}
    for part in ("train", "val"):
        key = features_key(cell.model, inputs.image_size, built.weights, ctx.run_dir / "splits.csv", part)
        parts[part] = cached_features(built, inputs.dataset(split, part, batch_size), ctx.run_dir / "features" / f"{key}.npy")
    num_classes = len(split.class_names)
    return CachedHeadPhase(
        model=head_model(built),
        train=feature_dataset(parts["train"], split.label_indices("train"), num_classes, batch_size,
                              sample_weights=class_weights, shuffle_seed=cell.seed),
        val=feature_dataset(parts["val"], split.label_indices("val"), num_classes, batch_size),
    )


def evaluation_record(ctx: RunContext, cell: Cell, probabilities: dict[str, np.ndarray], *, variant: str = "") -> dict:
    """Metrics and saved predictions of one cell from its class probabilities per split.

    `variant` names a second row the same cell produces (late fusion's confidence rule): it gets
    its own cell id, model label and predictions file, while `registry_name` keeps the entry.
    """
    split = ctx.split
    entry = get_entry(cell.model)
    cell_id = f"{cell.cell_id}-{variant}" if variant else cell.cell_id
    model_label = f"{cell.model} ({variant})" if variant else cell.model
    metrics, frames = {}, []
    for part, probs in probabilities.items():
        y_true = split.label_indices(part)
        metrics[part] = classification_metrics(y_true, probs, split.class_names)
        frames.append(_prediction_frame(part, split.subset(part), y_true, probs, split.class_names))
    predictions_file = predictions_path(ctx.run_dir, cell_id)
    write_csv_atomic(predictions_file, pd.concat(frames, ignore_index=True))
    record = {
        "cell_id": cell_id, "index": cell.index, "model": model_label, "registry_name": cell.model, "family": entry.family,
        "modality": entry.modality, "alpha": cell.alpha, "seed": cell.seed, "status": "ok", "error": "",
        "class_names": split.class_names, "metrics": metrics,
        "best_val_score": metrics.get("val", {}).get("accuracy"),
        "predictions_file": str(predictions_file.relative_to(ctx.run_dir)),
        "config": ctx.config.to_dict(), "environment": environment_info(),
    }
    if entry.modality != "image" and ctx.caption_warning:
        record["caption_warning"] = ctx.caption_warning
    return record


def run_late_fusion_cell(ctx: RunContext, cell: Cell) -> dict:
    """Combines the component cells' saved probabilities (same alpha and seed) by both late-fusion rules."""
    entry = get_entry(cell.model)
    component_probs = []
    for component in entry.components:
        component_id = Cell(-1, component, cell.alpha, cell.seed).cell_id
        path = predictions_path(ctx.run_dir, component_id)
        if not path.is_file():
            raise RuntimeError(f"component cell {component_id} has no predictions (did it fail?)")
        frame = pd.read_csv(path)
        component_probs.append({part: frame[frame["split"] == part][[f"prob_{c}" for c in ctx.split.class_names]].to_numpy()
                                for part in ("val", "test")})
    image, text = component_probs
    weight = choose_image_weight(image["val"], text["val"], ctx.split.label_indices("val"))
    record = evaluation_record(ctx, cell, {p: weighted_average(image[p], text[p], weight) for p in image if len(image[p])})
    record.update(weights=f"image weight {weight:g} (chosen on val)", late_fusion_rule="weighted_average",
                  image_weight=weight, components=list(entry.components))
    confidence = evaluation_record(ctx, cell, {p: confidence_selection(image[p], text[p]) for p in image if len(image[p])},
                                   variant="confidence")
    confidence.update(weights="more confident model per sample", late_fusion_rule="confidence_selection",
                      components=list(entry.components))
    write_json_atomic(record_path(ctx.run_dir, confidence["cell_id"]), confidence)
    return record


def _prediction_frame(part, frame, y_true, probabilities, class_names) -> pd.DataFrame:
    out = pd.DataFrame({"split": part, "path": frame["path"].to_numpy(), "true": y_true,
                        "pred": probabilities.argmax(axis=1)})
    for i, name in enumerate(class_names):
        out[f"prob_{name}"] = probabilities[:, i]
    return out


def failed_record(cell: Cell, ctx: RunContext, error: BaseException) -> dict:
    return {
        "cell_id": cell.cell_id, "index": cell.index, "model": cell.model, "alpha": cell.alpha, "seed": cell.seed,
        "status": "failed", "error": f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:500],
        "traceback": traceback.format_exc(), "config": ctx.config.to_dict(), "environment": environment_info(),
    }


def run_grid(ctx: RunContext, *, only: list[int] | None = None, quiet: bool = False) -> int:
    """Runs every unfinished cell (or those of the grid indices `only`); returns the number of failed cells."""
    cells = ctx.cells
    if only is not None:
        outside = [i for i in only if not 0 <= i < len(cells)]
        if outside:
            raise UsageError(f"--cell {outside[0]} is out of range; this grid has cells 0..{len(cells) - 1}")
        cells = [cells[i] for i in only]
    done = finished_cell_ids(ctx.run_dir)
    todo = [c for c in cells if c.cell_id not in done]
    if len(todo) < len(cells):
        print(f"resuming: {len(cells) - len(todo)} of {len(cells)} cells already finished, {len(todo)} to run")
    verbose = 0 if quiet else (1 if sys.stdout.isatty() else 2)
    failed, start = 0, time.perf_counter()
    for position, cell in enumerate(todo, 1):
        print(f"[{position}/{len(todo)}] start {cell.cell_id} (elapsed {_clock(time.perf_counter() - start)})", flush=True)
        try:
            record = run_cell(ctx, cell, verbose=verbose)
        except USER_ERRORS:
            raise
        except Exception as err:  # one cell's failure (out of memory, NaN, ...) must not stop the sweep
            failed += 1
            record = failed_record(cell, ctx, err)
            print(f"[{position}/{len(todo)}] FAILED {cell.cell_id}: {record['error']}", flush=True)
        model = record.pop("_model", None)
        if model is not None:
            save_model_if_wanted(ctx, record, model)
        write_json_atomic(record_path(ctx.run_dir, cell.cell_id), record)  # the record is the commit point
        shutil.rmtree(work_dir(ctx.run_dir, cell.cell_id), ignore_errors=True)
        shutil.rmtree(cache_dir(ctx.run_dir, cell.cell_id), ignore_errors=True)
        elapsed = time.perf_counter() - start
        eta = elapsed / position * (len(todo) - position)
        if record["status"] == "ok":
            val = record["metrics"].get("val", {}).get("accuracy", float("nan"))
            print(f"[{position}/{len(todo)}] done {cell.cell_id}: val_accuracy {val:.4f} "
                  f"(elapsed {_clock(elapsed)}, ETA {_clock(eta)})", flush=True)
    return failed


def late_fusion_indices(ctx: RunContext) -> list[int]:
    """Grid cells that combine other cells' predictions instead of training."""
    return [cell.index for cell in ctx.cells if get_entry(cell.model).components]


def finish_late_fusion(run_dir: Path) -> int:
    """Computes the late-fusion cells a Slurm array leaves to its merge job (they need their components'
    predictions, which parallel tasks may not have written yet); returns the number that failed."""
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        return 0
    ctx = prepare_run(config_from_dict(yaml.safe_load(config_file.read_text())), run_dir, write=False)
    done = finished_cell_ids(run_dir)
    pending = [i for i in late_fusion_indices(ctx) if ctx.cells[i].cell_id not in done]
    return run_grid(ctx, only=pending, quiet=True) if pending else 0


def work_dir(run_dir: Path, cell_id: str) -> Path:
    """A cell's per-epoch backups while it trains (see `benchmark.backup`)."""
    return run_dir / "work" / cell_id


def cache_dir(run_dir: Path, cell_id: str) -> Path:
    """Where a cell's decoded images spill when they do not fit in memory; removed with its backups."""
    return run_dir / "cache" / cell_id


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def save_model_if_wanted(ctx: RunContext, record: dict, model) -> None:
    """Saves the trained model with a sidecar that makes it self-describing (classes, preprocessing, size).

    `best` keeps one file per model name, replaced whenever a cell of that model beats it on
    validation; `all` keeps one per cell.
    """
    policy = ctx.config.save_models
    if policy == "none" or record["status"] != "ok":
        return
    if policy == "best":
        rivals = [r for r in load_records(ctx.run_dir) if r.get("model") == record["model"] and r.get("status") == "ok"]
        if any(validation_rank_key(r) > validation_rank_key(record) for r in rivals if r["cell_id"] != record["cell_id"]):
            return
        stem = record["model"]
    else:
        stem = record["cell_id"]
    target = ctx.run_dir / "saved_models" / f"{stem}.keras"
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.stem}.{os.getpid()}.tmp.keras")  # parallel Slurm tasks never share it
    model.save(temporary)
    temporary.replace(target)
    write_json_atomic(target.with_suffix(".json"), {
        "cell_id": record["cell_id"], "model": record["model"], "class_names": record["class_names"],
        "preprocess": record["preprocess"], "image_size": record["image_size"], "alpha": record["alpha"],
        "seed": record["seed"], "weights": record["weights"], "val_accuracy": record["best_val_score"],
        "modality": record.get("modality", "image"), "text_encoder": ctx.config.text_encoder,
        "sequence_length": ctx.config.sequence_length,
    })

"""`evaluate RUN_DIR DATA`: does a finished run's model work on photos it never saw, labelled in
other words?

Every chosen saved model is fed DATA's images exactly as `predict` feeds new files (its own size,
preprocessing contract, captions for text models, probabilities through `file_probabilities`:
test-time views and calibration), so a figure here is what a user of the model would get. DATA is
read by `scan_dataset` in any of its three layouts, every split pooled: nothing of it is trained on,
and images whose decoded pixels the run already holds in its `splits.csv` are counted and named in a
note rather than silently scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.cross_dataset.adapt_bn import adapted_probabilities, reference_rows
from benchmark.cross_dataset.data_notes import dataset_name, one_class_note, overlap_note
from benchmark.cross_dataset.label_map import LabelMap, read_label_map_file, resolve_label_map
from benchmark.cross_dataset.scoring import score_predictions, target_matrix
from benchmark.errors import UsageError, error_line
from benchmark.inference.predict import load_model_file, probabilities_for_files
from benchmark.io import write_csv_atomic
from benchmark.output import notice, say, warn
from benchmark.results.cross_dataset import (
    OK,
    SKIPPED,
    CrossDatasetEvaluation,
    ModelEvaluation,
    evaluations_dir,
    print_summary,
    save_evaluation,
    write_cross_dataset_tables,
)
from benchmark.results.stats import bootstrap_ci
from benchmark.run.folder import split_file
from benchmark.run.records import CellRecord, load_predictions, load_records, validation_rank_key
from benchmark.run.saved_models import saved_model_file
from data_pipeline import ScannedDataset, caption_leak_fraction, read_split_file, scan_dataset

CELL_CHOICES = ("best", "all")
FAILED = "failed"
NOT_SAVED = (
    "no saved model of this cell (--save-models best keeps each model's best cell, "
    "all keeps every cell)"
)
LATE_FUSION = (
    "late fusion has no model of its own (it combines two saved models' predictions); "
    "its components are scored"
)


@dataclass
class ChosenCell:
    """A cell `--cells` selects, and its saved model file (None with the reason it cannot be
    scored).
    """

    record: CellRecord
    model_file: Path | None
    reason: str = ""


def is_late_fusion(record: CellRecord) -> bool:
    """A late-fusion row: every finished one records its rule and its components (its name is
    not read: a model's kind is the plan's and the record's fact, not a prefix)."""
    return bool(record.late_fusion_rule or record.components)


def choose_cells(run_dir: Path, records: list[CellRecord], which: str) -> list[ChosenCell]:
    """`best`: each model's best cell by validation (the one `predict` would use for it); `all`:
    every finished cell.

    Ordered by validation rank, best first, as the leaderboard is.
    """
    if which not in CELL_CHOICES:
        raise UsageError(f"--cells {which!r} is not one of {', '.join(CELL_CHOICES)}")
    ranked = sorted((r for r in records if r.ok), key=validation_rank_key, reverse=True)
    if which == "best":
        seen: set[str] = set()
        ranked = [r for r in ranked if not (r.model in seen or seen.add(r.model))]
    chosen = []
    for record in ranked:
        if is_late_fusion(record):
            chosen.append(ChosenCell(record, None, LATE_FUSION))
            continue
        found = saved_model_file(run_dir, record)
        chosen.append(ChosenCell(record, found, "" if found else NOT_SAVED))
    return chosen


def caption_note(chosen: list[ChosenCell], scored: pd.DataFrame, label_map: LabelMap) -> str:
    """A note when text or fusion models read captions that spell out the answer (DATA's class or
    its run class).
    """
    readers = [
        c.record.cell_id
        for c in chosen
        if c.model_file is not None and c.record.modality != "image"
    ]
    if not readers:
        return ""
    first_target = scored.assign(label=[label_map.targets[label][0] for label in scored["label"]])
    leak = max(
        caption_leak_fraction(scored, list(label_map.targets)),
        caption_leak_fraction(first_target, list(label_map.run_classes)),
    )
    if leak <= 0.5:
        return ""
    return (
        f"{leak:.0%} of DATA's captions (from its manifest or file names) name their class: "
        f"{', '.join(readers)} "
        "read the answer there, so their scores overstate what the image and a real caption tell"
    )


def in_domain_interval(run_dir: Path, record: CellRecord) -> list[float]:
    """The cell's test-accuracy interval from its own predictions, computed as the leaderboard
    computes it.
    """
    frame = load_predictions(run_dir, record)
    test = frame[frame["split"] == "test"] if frame is not None else None
    if test is None or test.empty:
        return []
    return list(
        bootstrap_ci(
            test["true"].to_numpy(int), test["pred"].to_numpy(int), seed=max(int(record.seed), 0)
        )
    )


def source_reference(run_dir: Path, record: CellRecord) -> tuple[list, list[str]]:
    """The cell's own training images `--adapt-bn` shifts the model's statistics from
    (`adapt_bn.reference_rows`), with their captions."""
    chosen = reference_rows(read_split_file(split_file(run_dir, record.fold)))
    captions = chosen["caption"].fillna("") if "caption" in chosen else [""] * len(chosen)
    return list(chosen["path"]), list(captions)


def score_cell(
    chosen: ChosenCell,
    scored: pd.DataFrame,
    label_map: LabelMap,
    run_classes: list[str],
    run_dir: Path,
    folder: Path,
    out_dir: Path,
    adapt_bn: bool = False,
) -> ModelEvaluation:
    """One saved model on DATA's scored images; its per-image predictions go to
    `out_dir/<cell>.predictions.csv`.

    With `adapt_bn`, the model in memory is then adapted to DATA (`cross_dataset.adapt_bn`) and
    scored again into the `bn_adapted_*` figures; the file on disk is only ever read.
    """
    record = chosen.record
    base = ModelEvaluation(
        model=record.model,
        cell_id=record.cell_id,
        alpha=record.alpha,
        seed=record.seed,
        in_domain_test_accuracy=record.split_metrics("test").get("accuracy"),
        in_domain_test_accuracy_ci=in_domain_interval(run_dir, record),
    )
    if chosen.model_file is None:
        base.status, base.reason = SKIPPED, chosen.reason
        return base
    try:
        saved = load_model_file(chosen.model_file)
        if list(saved.info.class_names) != run_classes:
            base.status, base.reason = (
                SKIPPED,
                f"its classes ({', '.join(saved.info.class_names)}) are not the run's",
            )
            return base
        files = [Path(p) for p in scored["path"]]
        probabilities = probabilities_for_files(saved, files, list(scored["caption"]))
    except (
        Exception
    ) as err:  # one model that cannot load or predict must not cost the others their rows
        base.status, base.reason = FAILED, error_line(err)
        return base
    data_classes = list(label_map.targets)
    true = np.array([data_classes.index(label) for label in scored["label"]])
    pred = probabilities.argmax(axis=1)
    targets = target_matrix(label_map, run_classes)
    score = score_predictions(true, pred, targets, data_classes)
    frame = pd.DataFrame(
        {
            "path": scored["path"],
            "label": scored["label"],
            "targets": ["|".join(label_map.targets[label]) for label in scored["label"]],
            "pred": [run_classes[i] for i in pred],
            "correct": targets[true, pred],
        }
    )
    for index, name in enumerate(run_classes):
        frame[f"prob_{name}"] = probabilities[:, index]
    predictions = write_csv_atomic(out_dir / f"{record.cell_id}.predictions.csv", frame)
    base.images, base.accuracy, base.accuracy_ci = (
        score.images,
        score.accuracy,
        list(score.accuracy_ci),
    )
    base.macro_f1, base.macro_f1_ci = score.macro_f1, list(score.macro_f1_ci)
    base.per_class, base.confusion = score.per_class, score.confusion
    if len(data_classes) == 1:  # no other class: F1 and precision would only restate the recall
        base.macro_f1, base.macro_f1_ci = None, []
        base.per_class = {
            name: {k: v for k, v in figures.items() if k in ("recall", "support")}
            for name, figures in score.per_class.items()
        }
    base.predictions_file = str(predictions.relative_to(folder))
    if adapt_bn:
        try:  # after the plain figures, which a failed adaptation must not cost
            adapted, base.bn_layers = adapted_probabilities(
                saved, files, list(scored["caption"]), reference=source_reference(run_dir, record)
            )
        except Exception as err:
            base.reason = f"--adapt-bn failed: {error_line(err)}"
            warn(f"{record.cell_id}: {base.reason}")
            return base
        after = score_predictions(true, adapted.argmax(axis=1), targets, data_classes)
        base.bn_adapted_accuracy, base.bn_adapted_accuracy_ci = (
            after.accuracy,
            list(after.accuracy_ci),
        )
        base.bn_adapted_macro_f1 = after.macro_f1 if len(data_classes) > 1 else None
    return base


def run_classes_of(chosen: list[ChosenCell]) -> list[str]:
    """The run's classes; cells of one run folder share them (one split), which is checked here."""
    names = {tuple(c.record.class_names) for c in chosen}
    if len(names) != 1:
        raise UsageError(
            "the run's cells disagree on their classes "
            f"({'; '.join(', '.join(n) for n in sorted(names))}); "
            "evaluate one run folder whose cells share a split"
        )
    return list(next(iter(names)))


def prepare(
    run_dir: Path, data: str, label_map_file: str | None, cells: str, skip_corrupt: bool
) -> tuple[list[ChosenCell], list[str], ScannedDataset, LabelMap]:
    """Everything checked before any model loads: the run folder, its saved models, DATA and the
    class translation.
    """
    if not (run_dir / "cells").is_dir():
        raise UsageError(
            f"{str(run_dir)!r} is not a run folder (no cells/ inside); pass the --output of a run"
        )
    records = [r for r in load_records(run_dir) if r.ok]
    if not records:
        raise UsageError(f"run folder {str(run_dir)!r} has no finished cells to evaluate")
    chosen = choose_cells(run_dir, records, cells)
    if not any(c.model_file for c in chosen):
        raise UsageError(
            f"run folder {str(run_dir)!r} has no saved model for --cells {cells}: models are saved "
            "only while cells train, so train the grid again into a new --output with "
            "--save-models best (the default) or all"
        )
    run_classes = run_classes_of(chosen)
    scanned = scan_dataset(data, skip_corrupt=skip_corrupt, min_classes=1)  # one bin of photos
    mapping = read_label_map_file(label_map_file) if label_map_file else None
    label_map = resolve_label_map(
        scanned.class_names, run_classes, mapping, source=label_map_file or ""
    )
    return chosen, run_classes, scanned, label_map


def evaluate_command(
    run_dir: str,
    data: str,
    *,
    label_map: str | None = None,
    cells: str = "best",
    output: str | None = None,
    skip_corrupt: bool = False,
    adapt_bn: bool = False,
) -> int:
    """Scores the chosen saved models on DATA; writes `cross_dataset.csv/.md` (and the run's report
    section).

    Exit 0 when at least one model was scored; 1 when every chosen model failed to load or predict.
    """
    run = Path(run_dir)
    chosen, run_classes, scanned, translation = prepare(run, data, label_map, cells, skip_corrupt)
    folder = Path(output) if output else run
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--output {output!r} is an existing file; give a folder")
    table = scanned.table
    scored = table[table["label"].isin(translation.targets)].reset_index(drop=True)
    left_out = {name: int((table["label"] == name).sum()) for name in translation.left_out}
    name = dataset_name(scanned.source)
    notes = [n for n in (overlap_note(run, scored), caption_note(chosen, scored, translation)) if n]
    if translation.by_name and translation.source:
        notes.append(f"matched by name, not in the map: {', '.join(translation.by_name)}")
    if len(translation.targets) == 1:
        notes.append(one_class_note(next(iter(translation.targets))))
    say(
        f"data: {scanned.source} ({scanned.layout}, {len(scored)} images scored in "
        f"{len(translation.targets)} classes)"
    )
    say("classes (DATA -> run): " + "; ".join(translation.describe()))
    for note in notes:
        notice(note)
    results = []
    for item in chosen:
        if item.model_file is not None:
            say(f"scoring {item.record.cell_id} ({item.model_file.name})")
        results.append(
            score_cell(
                item,
                scored,
                translation,
                run_classes,
                run,
                folder,
                evaluations_dir(folder) / name,
                adapt_bn=adapt_bn,
            )
        )
    evaluation = CrossDatasetEvaluation(
        dataset=name,
        data=str(Path(scanned.source).resolve()),
        layout=scanned.layout,
        run_dir=str(run.resolve()),
        run_classes=run_classes,
        data_classes=list(translation.targets),
        mapping=translation.describe(),
        label_map=label_map or "",
        cells=cells,
        adapt_bn=adapt_bn,
        left_out=left_out,
        skipped_files=[list(s) for s in scanned.skipped],
        notes=notes,
        models=results,
    )
    save_evaluation(folder, evaluation)
    csv, markdown = write_cross_dataset_tables(folder)
    print_summary(evaluation)
    if folder.resolve() == run.resolve():
        from benchmark.results.report import write_report

        report = write_report(run)
        say(
            f"{csv.name}, {markdown.name} and the cross-dataset section of {report.name} written "
            f"to {run}"
        )
    else:
        say(f"{csv.name} and {markdown.name} written to {folder}")
    return 0 if any(r.status == OK for r in results) else 1

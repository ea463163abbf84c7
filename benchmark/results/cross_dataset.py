"""Cross-dataset results: one stored evaluation per data set, and the `cross_dataset.csv/.md` tables
built from them.

`evaluate RUN_DIR DATA` stores what it measured in `cross_dataset/<dataset>.json` (every model's
scores, per-class figures and confusion counts) and
`cross_dataset/<dataset>/<cell>.predictions.csv`. The tables and the report's section are rebuilt
from those files alone, so evaluating a second data set adds its rows and re-evaluating one replaces
only its own: nothing measured earlier is lost.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from benchmark.errors import error_line
from benchmark.io import write_csv_atomic, write_json_atomic, write_text_atomic
from benchmark.output import say
from benchmark.results.stats import format_ci
from benchmark.results.tables import to_markdown

OK, SKIPPED = "ok", "skipped"


def evaluations_dir(folder: Path) -> Path:
    """Where `evaluate` keeps its stored evaluations: the run folder, or the `--output` folder
    given."""
    return Path(folder) / "cross_dataset"


@dataclass
class ModelEvaluation:
    """One saved model scored on DATA, or why it was not (`status` "skipped", `reason`)."""

    model: str
    cell_id: str
    alpha: float | None = None
    seed: int | None = None
    status: str = OK
    reason: str = ""
    images: int = 0
    accuracy: float | None = None
    accuracy_ci: list[float] = field(default_factory=list)
    macro_f1: float | None = None
    macro_f1_ci: list[float] = field(default_factory=list)
    in_domain_test_accuracy: float | None = None  # the cell's own test split, from its record
    in_domain_test_accuracy_ci: list[float] = field(
        default_factory=list
    )  # as the leaderboard's test_accuracy_ci
    per_class: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # DATA class -> recall, precision, f1, support
    confusion: list[list[int]] = field(
        default_factory=list
    )  # DATA classes (rows) x run classes (columns)
    predictions_file: str = ""  # relative to the folder holding cross_dataset/
    # `evaluate --adapt-bn`: the same model after its BatchNorm statistics were re-estimated on
    # DATA's images (`cross_dataset.adapt_bn`); None without the flag.
    bn_adapted_accuracy: float | None = None
    bn_adapted_accuracy_ci: list[float] = field(default_factory=list)
    bn_adapted_macro_f1: float | None = None
    bn_layers: int | None = None  # BatchNorm layers re-estimated (0: the model has none)

    @property
    def drop(self) -> float | None:
        """In-domain test accuracy minus accuracy on DATA: positive means the model does worse on
        DATA."""
        if self.accuracy is None or self.in_domain_test_accuracy is None:
            return None
        return self.in_domain_test_accuracy - self.accuracy


@dataclass
class CrossDatasetEvaluation:
    """Every chosen model of a run scored on one data set, with the translation of its classes."""

    dataset: str  # short name, also the file stem in cross_dataset/
    data: str  # DATA as given (absolute path)
    layout: str
    run_dir: str
    run_classes: list[str]
    data_classes: list[str]  # DATA's scored classes, the confusion rows
    mapping: list[str]  # `data -> run` lines (LabelMap.describe)
    label_map: str = ""  # the map file, or "" when classes matched by name
    cells: str = "best"
    adapt_bn: bool = False  # `--adapt-bn`: the bn_adapted_* figures were measured
    left_out: dict[str, int] = field(
        default_factory=dict
    )  # DATA class mapped to null -> its image count
    skipped_files: list[list[str]] = field(
        default_factory=list
    )  # unreadable images left out with --skip-corrupt
    notes: list[str] = field(default_factory=list)
    models: list[ModelEvaluation] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CrossDatasetEvaluation:
        names = {f.name for f in dataclasses.fields(cls)}
        model_names = {f.name for f in dataclasses.fields(ModelEvaluation)}
        values = {k: v for k, v in data.items() if k in names}
        values["models"] = [
            ModelEvaluation(**{k: v for k, v in m.items() if k in model_names})
            for m in data.get("models", [])
        ]
        return cls(**values)


@dataclass
class CrossDatasetRow:
    """One row of `cross_dataset.csv`: a model of the run on one data set, beside its in-domain test
    accuracy."""

    dataset: str
    model: str
    cell_id: str
    alpha: float | None
    seed: int | None
    images: int | None
    accuracy: float | None  # right = the prediction lies in the image's mapped set
    accuracy_ci: str
    macro_f1: float | None  # over DATA's scored classes (benchmark/cross_dataset/scoring.py)
    macro_f1_ci: str
    in_domain_test_accuracy: float | None
    in_domain_test_accuracy_ci: str
    drop: float | None  # in_domain_test_accuracy - accuracy
    bn_adapted_accuracy: float | None  # with --adapt-bn: after test-time BatchNorm adaptation
    bn_adapted_accuracy_ci: str
    bn_adapted_macro_f1: float | None
    bn_adapt_gain: float | None  # bn_adapted_accuracy - accuracy
    worst_class: str  # DATA class with the lowest recall
    worst_class_recall: float | None
    status: str = OK  # "ok" or "skipped"
    reason: str = ""
    label_map: str = ""


COLUMNS = [f.name for f in dataclasses.fields(CrossDatasetRow)]


def _ci(bounds: list[float]) -> str:
    return format_ci(*bounds) if len(bounds) == 2 else ""


def row_of(evaluation: CrossDatasetEvaluation, scored: ModelEvaluation) -> CrossDatasetRow:
    recalls = {
        name: c.get("recall")
        for name, c in scored.per_class.items()
        if isinstance(c.get("recall"), float) and not math.isnan(c["recall"])
    }
    worst = min(recalls, key=recalls.get) if recalls else ""
    return CrossDatasetRow(
        dataset=evaluation.dataset,
        model=scored.model,
        cell_id=scored.cell_id,
        alpha=scored.alpha,
        seed=scored.seed,
        images=scored.images if scored.status == OK else None,
        accuracy=scored.accuracy,
        accuracy_ci=_ci(scored.accuracy_ci),
        macro_f1=scored.macro_f1,
        macro_f1_ci=_ci(scored.macro_f1_ci),
        in_domain_test_accuracy=scored.in_domain_test_accuracy,
        in_domain_test_accuracy_ci=_ci(scored.in_domain_test_accuracy_ci),
        drop=scored.drop,
        bn_adapted_accuracy=scored.bn_adapted_accuracy,
        bn_adapted_accuracy_ci=_ci(scored.bn_adapted_accuracy_ci),
        bn_adapted_macro_f1=scored.bn_adapted_macro_f1,
        bn_adapt_gain=None
        if scored.bn_adapted_accuracy is None or scored.accuracy is None
        else scored.bn_adapted_accuracy - scored.accuracy,
        worst_class=worst,
        worst_class_recall=recalls.get(worst),
        status=scored.status,
        reason=scored.reason,
        label_map=evaluation.label_map,
    )


def load_evaluations(folder: Path) -> list[CrossDatasetEvaluation]:
    """The stored evaluations under `folder/cross_dataset/`, by data-set name; unreadable files are
    skipped with a warning."""
    found = []
    for path in sorted(evaluations_dir(folder).glob("*.json")):
        try:
            found.append(CrossDatasetEvaluation.from_json(json.loads(path.read_text())))
        except (OSError, ValueError, TypeError, KeyError) as err:
            say(
                f"warning: {path} is unreadable ({error_line(err)}); its rows are left out of "
                "cross_dataset.csv"
            )
    return found


def cross_dataset_frame(evaluations: list[CrossDatasetEvaluation]) -> pd.DataFrame:
    rows = [dataclasses.asdict(row_of(e, m)) for e in evaluations for m in e.models]
    return pd.DataFrame(rows, columns=COLUMNS)


def save_evaluation(folder: Path, evaluation: CrossDatasetEvaluation) -> Path:
    return write_json_atomic(
        evaluations_dir(folder) / f"{evaluation.dataset}.json", evaluation.to_json()
    )


def write_cross_dataset_tables(folder: Path) -> tuple[Path, Path]:
    """`cross_dataset.csv` and `cross_dataset.md` in `folder`, from every stored evaluation
    there."""
    folder = Path(folder)
    evaluations = load_evaluations(folder)
    csv = write_csv_atomic(folder / "cross_dataset.csv", cross_dataset_frame(evaluations))
    text = "# Cross-dataset evaluation\n\n" + cross_dataset_markdown(evaluations, level=2)
    return csv, write_text_atomic(folder / "cross_dataset.md", text)


SHOWN = [
    "model",
    "alpha",
    "images",
    "accuracy",
    "accuracy_ci",
    "macro_f1",
    "macro_f1_ci",
    "in_domain_test_accuracy",
    "in_domain_test_accuracy_ci",
    "drop",
    "worst_class",
    "worst_class_recall",
]
# Shown after `drop` for an evaluation made with `--adapt-bn`.
BN_SHOWN = ["bn_adapted_accuracy", "bn_adapted_accuracy_ci", "bn_adapt_gain"]
READING = (
    "A prediction counts as right when it is one of the run classes the image's class maps to. "
    "`drop` is the cell's in-domain test accuracy minus its accuracy here: how much is lost on "
    "these photos. The in-domain figure is over the run's own classes and class mix, so a map that "
    "merges classes (several targets) or leaves some out changes the task too; compare per-class "
    "recall for the classes both share. Intervals are 95 % stratified bootstrap intervals over "
    "these images. `bn_adapted_*` (with `evaluate --adapt-bn`) score the same model after its "
    "BatchNorm statistics were re-estimated on these images, without labels; `bn_adapt_gain` is "
    "that accuracy minus the plain one (docs/shift-probe.md). Macro-F1 is over the data set's "
    "classes, an image counting as predicted-as "
    "class d when its prediction lies in d's mapped set.\n"
)


def cross_dataset_markdown(evaluations: list[CrossDatasetEvaluation], *, level: int) -> str:
    """The markdown of every evaluation: its table, class translation, per-class recall and
    confusion matrices."""
    if not evaluations:
        return "No cross-dataset evaluation yet (`run_benchmark.py evaluate RUN_DIR DATA`).\n"
    head = "#" * level
    parts = [READING]
    for evaluation in evaluations:
        parts.append(f"{head} `{evaluation.dataset}`: {evaluation.data}\n")
        scored = [m for m in evaluation.models if m.status == OK]
        images = scored[0].images if scored else 0
        source = (
            f"label map `{evaluation.label_map}`"
            if evaluation.label_map
            else "class names (no label map)"
        )
        parts.append(
            f"{images} images ({evaluation.layout} layout, all splits pooled), "
            f"{len(evaluation.data_classes)} classes scored through {source}; models: `--cells "
            f"{evaluation.cells}`.\n"
        )
        parts.append(
            "Class translation (DATA -> run): "
            + "; ".join(f"`{line}`" for line in evaluation.mapping)
            + ".\n"
        )
        if evaluation.left_out:
            parts.append(
                "Left out (mapped to null): "
                + ", ".join(f"{k} ({n} images)" for k, n in evaluation.left_out.items())
                + ".\n"
            )
        if evaluation.skipped_files:
            parts.append(
                f"{len(evaluation.skipped_files)} unreadable image(s) skipped (`--skip-corrupt`): "
                + ", ".join(f"{Path(p).name} ({why})" for p, why in evaluation.skipped_files[:10])
                + (" ..." if len(evaluation.skipped_files) > 10 else "")
                + ".\n"
            )
        parts.extend(f"Note: {note}\n" for note in evaluation.notes)
        frame = cross_dataset_frame([evaluation])
        ok = frame[frame["status"] == OK]
        if not ok.empty:
            shown = list(SHOWN)
            if evaluation.adapt_bn:
                at = shown.index("drop") + 1
                shown[at:at] = BN_SHOWN
            parts.append(to_markdown(ok[shown].reset_index(drop=True)))
        skipped = frame[frame["status"] != OK]
        if not skipped.empty:
            parts.append(
                "Not scored: "
                + "; ".join(f"`{c}` ({r})" for c, r in zip(skipped["cell_id"], skipped["reason"]))
                + ".\n"
            )
        if scored:
            recall = pd.DataFrame(
                {
                    "class": evaluation.data_classes,
                    "images": [
                        scored[0].per_class.get(c, {}).get("support")
                        for c in evaluation.data_classes
                    ],
                    **{
                        m.cell_id: [
                            m.per_class.get(c, {}).get("recall") for c in evaluation.data_classes
                        ]
                        for m in scored
                    },
                }
            )
            parts.append(f"{head}# Per-class recall on `{evaluation.dataset}`\n")
            parts.append(to_markdown(recall))
            parts.append(
                f"{head}# Confusion matrices on `{evaluation.dataset}` (rows: DATA's classes, "
                "columns: the run's)\n"
            )
            for m in scored:
                matrix = pd.DataFrame(m.confusion, columns=evaluation.run_classes)
                matrix.insert(0, "DATA \\ run", evaluation.data_classes)
                parts.append(f"`{m.cell_id}`:\n\n" + to_markdown(matrix))
    return "\n".join(parts)


def print_summary(evaluation: CrossDatasetEvaluation) -> None:
    """The evaluation as `evaluate` prints it: one table row per scored model, then what was not
    scored (failed or skipped models, classes left out, unreadable images)."""
    headers = ["cell", "images", "accuracy", "accuracy_ci", "macro_f1"]
    headers += ["in_domain_test_accuracy", "drop"]
    adapted = ["bn_adapted_accuracy", "bn_adapted_accuracy_ci", "bn_layers"]
    rows = [
        [
            m.cell_id,
            m.images,
            m.accuracy,
            format_ci(*m.accuracy_ci),
            m.macro_f1,
            m.in_domain_test_accuracy,
            m.drop,
            *(
                [m.bn_adapted_accuracy, format_ci(*m.bn_adapted_accuracy_ci), m.bn_layers]
                if evaluation.adapt_bn
                else []
            ),
        ]
        for m in evaluation.models
        if m.status == OK
    ]
    headers += adapted if evaluation.adapt_bn else []
    say(tabulate(rows, headers=headers, tablefmt="github", floatfmt=".4f"))
    for model in evaluation.models:
        if model.status != OK:
            say(f"{model.status}: {model.cell_id}: {model.reason}")
    for name, count in evaluation.left_out.items():
        say(f"left out (null in the label map): {name} ({count} images)")
    for path, reason in evaluation.skipped_files:
        say(f"skipped unreadable image {path} ({reason})")

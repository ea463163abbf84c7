"""The report's closing sections: the data set (splits or folds, duplicates, warnings) and the
environment the run trained in.

Apart from `report.py` because they describe the run's inputs (`splits.csv`, `splits/fold<k>.csv`,
`dataset_warnings.txt`, the records' environment) rather than its results.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.results.fold_report import fold_split_tables
from benchmark.results.report_page import ReportPage, escape
from benchmark.results.tables import to_markdown
from benchmark.run.records import CellRecord


def dataset_section(page: ReportPage) -> None:
    page.add("## Dataset\n")
    split_file = page.run_dir / "splits.csv"
    folds = fold_split_tables(page.run_dir)
    if folds:
        page.add(
            f"{len(folds[0])} images in {len(folds)} folds (`splits/fold<k>.csv`); each image "
            "is a test image in exactly one fold, and each fold validates on part of its own "
            "training images. Images per fold:\n"
        )
        page.add(
            to_markdown(
                pd.DataFrame(
                    [
                        {
                            "fold": k,
                            **{s: int((t["split"] == s).sum()) for s in ("train", "val", "test")},
                        }
                        for k, t in enumerate(folds)
                    ]
                )
            )
        )
        page.add(_duplicates(folds[0]))
    elif not split_file.is_file():
        page.add("No `splits.csv` in this run folder.\n")
    else:
        table = pd.read_csv(split_file, keep_default_na=False, dtype=str)
        classes = sorted(table["label"].unique())
        page.add(f"{len(table)} images, {len(classes)} classes: {', '.join(classes)}.\n")
        counts = pd.crosstab(table["label"], table["split"]).reindex(
            columns=[s for s in ("train", "val", "test") if s in set(table["split"])]
            + sorted(set(table["split"]) - {"train", "val", "test"})
        )
        counts["total"] = counts.sum(axis=1)
        counts.loc["total"] = counts.sum(axis=0)
        page.add(to_markdown(counts.reset_index().rename(columns={"label": "class"})))
        page.add(_duplicates(table))
    warnings_file = page.run_dir / "dataset_warnings.txt"
    if warnings_file.is_file():
        lines = [
            line.strip()
            for line in warnings_file.read_text(errors="replace").splitlines()
            if line.strip()
        ]
        if lines:
            page.add("### Dataset warnings\n")
            page.add("\n".join(f"- {escape(line)}" for line in lines) + "\n")


def environment_section(page: ReportPage, ok: list[CellRecord]) -> None:
    env = ok[0].environment if ok else {}
    if not env:
        return
    page.add("## Environment\n")
    rows = []
    for key in ("python", "tensorflow", "keras", "keras_hub", "devices", "git_commit"):
        value = env.get(key)
        rows.append(
            f"| {key} | "
            f"{escape(', '.join(map(str, value)) if isinstance(value, list) else value)} |"
        )
    page.add("| item | value |\n|---|---|\n" + "\n".join(rows) + "\n")


def _duplicates(table: pd.DataFrame) -> str:
    """Duplicate-content groups (same decoded pixels under several paths) and label conflicts among
    them."""
    if "content_hash" not in table.columns:
        return ""
    hashed = table[table["content_hash"] != ""]
    groups = [g for _, g in hashed.groupby("content_hash") if len(g) > 1]
    if not groups:
        return "No duplicate images (by decoded content).\n"
    conflicts = [g for g in groups if g["label"].nunique() > 1]
    straddling = [g for g in groups if g["split"].nunique() > 1]
    lines = [
        f"{len(groups)} duplicate-content group(s) ({sum(len(g) for g in groups)} files), "
        f"{len(conflicts)} with conflicting labels, {len(straddling)} spanning more than one "
        "split.\n",
        "<details><summary>Duplicate groups</summary>\n",
    ]
    for group in groups[:50]:
        flag = " **label conflict**" if group["label"].nunique() > 1 else ""
        lines.append(
            "- "
            + ", ".join(
                f"`{Path(p).name}` ({lab}, {s})"
                for p, lab, s in zip(group["path"], group["label"], group["split"])
            )
            + flag
        )
    if len(groups) > 50:
        lines.append(f"- ... and {len(groups) - 50} more")
    lines.append("\n</details>\n")
    return "\n".join(lines)

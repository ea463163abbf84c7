"""The parsers of the subcommands that work on a finished run or a saved model (report, predict,
evaluate, robustness, explain, serve) and of fetch-weights: no grid flags, only their own."""

from __future__ import annotations

import argparse

from benchmark.cli.parsing import OneLineParser
from benchmark.config.flags import add_verbose_flag, csv_list


def build_report_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="run_benchmark.py report", description="Rebuild the tables and report of a run folder."
    )
    parser.add_argument("run_dir")
    add_verbose_flag(parser)
    return parser


def build_predict_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="run_benchmark.py predict",
        description="Classify images with the best model of a run, or with a saved MODEL.keras.",
    )
    parser.add_argument("model", help="run folder (its best cell) or a saved .keras file")
    parser.add_argument("paths", nargs="+", help="image files or folders")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--csv", help="also write the predictions to this CSV file")
    parser.add_argument(
        "--caption", help="caption for text and fusion models (default: from each file name)"
    )
    add_verbose_flag(parser)
    return parser


def build_evaluate_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="run_benchmark.py evaluate",
        description="Score a finished run's saved models on another labelled image set (nothing of "
        "it is trained on): accuracy, macro-F1, per-class recall, confusion matrix, "
        "bootstrap intervals and the drop from the in-domain test accuracy.",
    )
    parser.add_argument("run_dir", help="run folder with saved models (--save-models best or all)")
    parser.add_argument(
        "data", help="class-folder root, pre-split root (all splits pooled) or CSV manifest"
    )
    parser.add_argument(
        "--label-map",
        help="YAML or JSON: each DATA class -> a run class, a list of them (any counts "
        "as right), or null (left out); default: match class names, ignoring case",
    )
    parser.add_argument(
        "--cells",
        choices=("best", "all"),
        default="best",
        help="best (default): each model's best cell by validation; all: every cell with a "
        "saved model",
    )
    parser.add_argument(
        "--output",
        help="folder for cross_dataset.csv/.md (default: the run folder, whose report.md "
        "gains the section)",
    )
    parser.add_argument(
        "--skip-corrupt", action="store_true", help="skip unreadable images of DATA, listing them"
    )
    parser.add_argument(
        "--adapt-bn",
        action="store_true",
        help="also score each model after re-estimating its BatchNorm statistics on DATA's "
        "images (no labels, no gradient step; the saved file is not changed)",
    )
    add_verbose_flag(parser)
    return parser


def build_robustness_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="run_benchmark.py robustness",
        description="Score a finished run's saved image models on their test images under common "
        "corruptions at severities 1-5 (robustness.csv; the report gains the section).",
    )
    parser.add_argument("run_dir", help="run folder with saved models (--save-models best or all)")
    parser.add_argument(
        "--force", action="store_true", help="score cells already in robustness.csv again"
    )
    parser.add_argument(
        "--per-class", type=int, help="test images per class scored (default 8, as after training)"
    )
    parser.add_argument(
        "--adapt-bn",
        action="store_true",
        help="score each image set (each corruption one severity at a time) after shifting the "
        "model's BatchNorm statistics by how it differs from the training images (test-time "
        "adaptation; robustness_bn.csv, the plain rows untouched)",
    )
    parser.add_argument(
        "--tta",
        type=int,
        default=0,
        metavar="N",
        help="score each image set with the softmax averaged over the first N test-time views "
        "(2-8: flip, crops; the views --tta averages in training; robustness_tta.csv, the plain "
        "rows untouched)",
    )
    add_verbose_flag(parser)
    return parser


def build_explain_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="run_benchmark.py explain",
        description="Grad-CAM heatmaps: where the best model of a run, or a saved MODEL.keras, "
        "looked.",
    )
    parser.add_argument("model", help="run folder (its best cell) or a saved .keras file")
    parser.add_argument("paths", nargs="+", help="image files or folders")
    parser.add_argument("--out", help="folder for the PNGs, one per image (default: explanations)")
    parser.add_argument(
        "--layer",
        help="layer to explain at, also inside a nested backbone (default: the last feature map)",
    )
    add_verbose_flag(parser)
    return parser


def build_serve_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="run_benchmark.py serve",
        description="A local web page over a finished run: classify photos, see Grad-CAM, browse "
        "its results (docs/app.md).",
    )
    parser.add_argument(
        "run_dir", nargs="?", help="finished run folder (default: newest in results/)"
    )
    parser.add_argument("--port", type=int, default=8000, help="default 8000; 0 picks a free one")
    parser.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    add_verbose_flag(parser)
    return parser


def build_fetch_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="run_benchmark.py fetch-weights",
        description="Download ImageNet weights and text encoders into the caches "
        "(on a connected machine).",
    )
    parser.add_argument(
        "--models", type=csv_list(str), default=[], help="comma list of registry names or wildcards"
    )
    parser.add_argument("--text-encoder", help="text encoder preset to fetch as well")
    add_verbose_flag(parser)
    return parser

"""Wall time of one model's alpha sweep: phase 1 on the augmented feature bank vs online, through
the real runner.

    python benchmarks/sweep_speed.py [--data DIR] [--per-class 40] [--model mobilenet_v2]
                                     [--image-size 96] [--epochs 5] [--fine-tune-epochs 2]
                                     [--modes auto,online,per-cell] [--bank-dtype float32]
                                     [--fine-tune-features online]

Every sweep runs the same grid (one model x 5 alphas) with the default recipe's augmentation on and
early stopping off (so each runs every epoch), into its own run folder; only how phase 1 gets its
features differs:
- auto: `--head-features auto`, the augmented feature bank (epoch e computed once, read by the other
  4 cells);
- online: `--head-features online`, every cell pushes every augmented image through the backbone;
- per-cell: online with every cell in its own process (`--isolate-cells`), as Slurm array tasks run.
Phase 2 trains on images in every mode and is included, unless `--fine-tune-features auto` (or
bank) lets the auto mode fine-tune on the fine-tune bank too (the other modes stay online; "bank s"
then adds its time). Goal: auto <= 0.35x online at 224 px, <= 0.5x at the small scale.
`--per-class N` takes the first N images of each class (the "40-per-class subset").

Backbone weights: ImageNet when they are in the Keras cache; otherwise a randomly initialised
backbone saved to a weights file and passed as `--weights FILE`, which the runner treats exactly
like pretrained weights (frozen, inference mode). The timing is the same; the accuracies then only
show that both paths agree, not what the model can do.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))  # run as a script from anywhere

ALPHAS = [0.0, 0.2, 0.5, 0.8, 1.0]


def backbone_weights(model: str, image_size: int, folder: Path) -> tuple[str, str]:
    """("imagenet", note) when cached, else a random-init weights file of the headless backbone."""
    from benchmark.errors import UsageError
    from benchmark.run.fetch_weights import check_weights_available
    from models import BuildSpec, build_model

    try:
        check_weights_available([model], "imagenet", "", image_size)
        return "imagenet", "ImageNet weights"
    except UsageError:
        built = build_model(model, BuildSpec(num_classes=2, image_size=image_size, weights="none"))
        path = folder / f"{model}_random.weights.h5"
        built.backbone.save_weights(path)
        return str(
            path
        ), "random-init backbone from a weights file (no ImageNet weights offline; speed only)"


def subset(data: Path, per_class: int | None, folder: Path) -> Path:
    """`data` itself, or a class-folder copy (symlinks) of its first `per_class` images per
    class."""
    if not per_class:
        return data
    from data_pipeline import scan_dataset

    table = scan_dataset(data).table
    for label, rows in table.groupby("label"):
        (folder / label).mkdir(parents=True)
        for path in sorted(rows["path"])[:per_class]:
            (folder / label / Path(path).name).symlink_to(path)
    return folder


def run_sweep(args, data: Path, weights: str, mode: str, run_dir: Path) -> dict:
    """Seconds of `run_grid`, each alpha cell's phase-1 and final validation accuracy, and the
    bank's seconds."""
    from benchmark.config.run_config import resolve_config
    from benchmark.run.folder import prepare_run
    from benchmark.run.loop import run_grid
    from benchmark.run.records import load_records

    config = resolve_config(
        None,
        None,
        {
            "models": [args.model],
            "alphas": ALPHAS,
            "data": str(data),
            "weights": weights,
            "image_size": args.image_size,
            "batch_size": args.batch_size,
            "initial_epochs": args.epochs,
            "fine_tune_epochs": args.fine_tune_epochs,
            "patience": args.epochs + args.fine_tune_epochs + 1,
            "augment": True,
            "head_features": "auto" if mode == "auto" else "online",
            "isolate_cells": "on" if mode == "per-cell" else "off",
            "save_models": "none",
            "profile": False,
            "fine_tune_features": args.fine_tune_features if mode == "auto" else "online",
            **({"fine_tune_lr": args.fine_tune_lr} if args.fine_tune_lr else {}),
        },
    )
    context = prepare_run(config, run_dir)
    started = time.perf_counter()
    failed = run_grid(context, quiet=True)
    seconds = time.perf_counter() - started
    if failed:
        raise SystemExit(f"{failed} cell(s) failed; see {run_dir / 'cells'}")
    records = sorted(load_records(run_dir), key=lambda r: r.alpha)
    return {
        "seconds": seconds,
        "val": [r.split_metrics("val")["accuracy"] for r in records],
        "test": [r.split_metrics("test")["accuracy"] for r in records],
        "phase1_val": [r.history["val_accuracy"][r.history["phase_boundary"] - 1] for r in records],
        "head_features": sorted({r.head_features for r in records}),
        "fine_tune_features": sorted({r.fine_tune_features for r in records}),
        "bank_seconds": sum(
            r.timings.get("feature_bank_seconds", 0.0)
            + r.timings.get("fine_tune_bank_seconds", 0.0)
            for r in records
        ),
        "trace": [r.timings["first_epoch_extra_seconds"][0] for r in records],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=PROJECT_ROOT.parent / "shared" / "data" / "trashnet"
    )
    parser.add_argument(
        "--per-class", type=int, default=None, help="first N images of each class only"
    )
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=5, help="phase-1 epochs per alpha cell")
    parser.add_argument("--fine-tune-epochs", type=int, default=2)
    parser.add_argument("--modes", default="auto,online,per-cell")
    parser.add_argument(
        "--fine-tune-lr",
        type=float,
        default=None,
        help="phase-2 learning rate (default: the recipe's; transfer_trashnet uses 1e-4)",
    )
    parser.add_argument("--bank-dtype", default=None, help="float32 (default) or float16")
    parser.add_argument(
        "--fine-tune-features",
        default="online",
        choices=("auto", "bank", "online"),
        help="phase 2 of the auto mode (default online: only phase 1 differs)",
    )
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"sweep_speed: skipped, no dataset at {args.data} (pass --data DIR)")
        return 0
    from tabulate import tabulate

    from benchmark.training import feature_bank

    if args.bank_dtype:  # the one default both banks read
        feature_bank.BANK_DTYPE = args.bank_dtype
    modes = args.modes.split(",")
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        data = subset(args.data, args.per_class, work / "subset")
        weights, note = backbone_weights(args.model, args.image_size, work)
        print(
            f"{args.model} at {args.image_size} px on {data} ({args.per_class or 'all'} per "
            f"class), {len(ALPHAS)} alphas x {args.epochs} phase-1 + {args.fine_tune_epochs} "
            "fine-tune epochs, augmentation on, early stopping off, bank "
            f"{feature_bank.BANK_DTYPE}; weights: {note}",
            flush=True,
        )
        results = {mode: run_sweep(args, data, weights, mode, work / mode) for mode in modes}
    paths = {
        mode: ",".join(r["head_features"]) + "/" + ",".join(r["fine_tune_features"])
        for mode, r in results.items()
    }
    rows = [
        [
            mode,
            paths[mode],
            f"{r['seconds']:.1f}",
            f"{r['bank_seconds']:.1f}",
            f"{sum(r['trace']) / len(r['trace']):.1f}",
            *[f"{a:.3f}" for a in r["phase1_val"]],
        ]
        for mode, r in results.items()
    ]
    headers = [
        "mode",
        "phase 1/2",
        "sweep s",
        "bank s",
        "trace s/cell",
        *[f"p1 val@{a:g}" for a in ALPHAS],
    ]
    print(tabulate(rows, headers=headers, tablefmt="github"))
    tests = [
        [mode, *[f"{a:.3f}" for a in r["test"]], f"{sum(r['test']) / len(r['test']):.3f}"]
        for mode, r in results.items()
    ]
    test_headers = ["mode", *[f"test@{a:g}" for a in ALPHAS], "mean test"]
    print(tabulate(tests, headers=test_headers, tablefmt="github"))
    if "auto" in results and "online" in results:
        ratio = results["auto"]["seconds"] / results["online"]["seconds"]
        print(
            f"sweep_speed model={args.model} size={args.image_size} "
            f"per_class={args.per_class or 'all'} auto_seconds={results['auto']['seconds']:.1f} "
            f"online_seconds={results['online']['seconds']:.1f} ratio={ratio:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

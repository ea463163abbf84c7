"""Wall time of one model's alpha sweep with phase 1 on cached backbone features vs online, through the real runner.

    python benchmarks/sweep_speed.py [--data DIR] [--model mobilenet_v2] [--image-size 96] [--epochs 5]

Both sweeps run the same grid (one model x 5 alphas, no augmentation, early stopping off so both run
every epoch) into their own run folders; only `head_features` differs. The cached sweep computes the
train/val features once and every alpha cell reuses them. Phase 2 always trains on images, so it is
left out by default (`--fine-tune-epochs 0`) to time what caching changes. Goal: cached <= 0.35x online.

Backbone weights: ImageNet when they are in the Keras cache; otherwise a randomly initialised
backbone saved to a weights file and passed as `--weights FILE`, which the runner treats exactly like
pretrained weights (frozen, inference mode). The timing is the same; the accuracies then only show
that both paths agree, not what the model can do.
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
        return str(path), "random-init backbone from a weights file (no ImageNet weights offline; speed only)"


def run_sweep(args, weights: str, head_features: str, run_dir: Path) -> tuple[float, list[float]]:
    """Seconds of `run_grid` and the validation accuracy of each alpha cell."""
    from benchmark.config.run_config import resolve_config
    from benchmark.run.folder import prepare_run
    from benchmark.run.loop import run_grid
    from benchmark.run.records import load_records

    config = resolve_config(None, None, {
        "models": [args.model], "alphas": ALPHAS, "data": str(args.data), "weights": weights,
        "image_size": args.image_size, "batch_size": args.batch_size, "initial_epochs": args.epochs,
        "fine_tune_epochs": args.fine_tune_epochs, "patience": args.epochs + args.fine_tune_epochs + 1,
        "augment": False, "head_features": head_features, "save_models": "none", "profile": False,
    })
    context = prepare_run(config, run_dir)
    started = time.perf_counter()
    failed = run_grid(context, quiet=True)
    seconds = time.perf_counter() - started
    if failed:
        raise SystemExit(f"{failed} cell(s) failed; see {run_dir / 'cells'}")
    records = sorted(load_records(run_dir), key=lambda r: r.alpha)
    return seconds, [r.split_metrics("val")["accuracy"] for r in records]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT.parent / "shared" / "data" / "trashnet")
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=5, help="phase-1 epochs per alpha cell")
    parser.add_argument("--fine-tune-epochs", type=int, default=0)
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"sweep_speed: skipped, no dataset at {args.data} (pass --data DIR)")
        return 0
    from tabulate import tabulate

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        weights, note = backbone_weights(args.model, args.image_size, work)
        print(f"{args.model} at {args.image_size} px, {len(ALPHAS)} alphas x {args.epochs} phase-1 epochs "
              f"(+{args.fine_tune_epochs} fine-tune), no augmentation, early stopping off; weights: {note}")
        results = {mode: run_sweep(args, weights, mode, work / mode) for mode in ("online", "cached")}
    rows = [[mode, f"{seconds:.1f}", *[f"{acc:.4f}" for acc in accuracies]] for mode, (seconds, accuracies) in results.items()]
    print(tabulate(rows, headers=["phase 1", "sweep seconds", *[f"val@{a:g}" for a in ALPHAS]], tablefmt="github"))
    ratio = results["cached"][0] / results["online"][0]
    print(f"sweep_speed model={args.model} online_seconds={results['online'][0]:.1f} "
          f"cached_seconds={results['cached'][0]:.1f} ratio={ratio:.3f} goal<=0.35 {'met' if ratio <= 0.35 else 'missed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

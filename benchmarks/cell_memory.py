#!/usr/bin/env python
"""Resident memory per cell over a long grid in one process (Keras is known to grow when models are
built in a loop: keras#19471, tensorflow#61791).

    python benchmarks/cell_memory.py [--cells 20] [--models simple_cnn]

Trains a grid of tiny cells (32 px, one epoch, the embedded sample) one after another in this
process, prints RSS after each cell, and the growth from the first to the last cell. If it grew by
more than 10 %, running each cell in a child process would pay; docs/usage.md (Resume) records the
figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=20)
    parser.add_argument("--models", default="simple_cnn")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from tabulate import tabulate

    from benchmark.config.run_config import RunConfig
    from benchmark.run.folder import prepare_run
    from benchmark.run.loop import run_grid

    models = args.models.split(",")
    alphas = [
        round(i / max(1, args.cells // len(models) - 1), 3)
        for i in range(args.cells // len(models))
    ]
    config = RunConfig(
        models=models,
        alphas=alphas,
        weights="none",
        image_size=32,
        batch_size=16,
        initial_epochs=1,
        fine_tune_epochs=0,
        profile=False,
        save_models="none",
    )
    rows = []
    with tempfile.TemporaryDirectory() as work:
        ctx = prepare_run(config, Path(work) / "run")
        for cell in ctx.cells:
            started = time.perf_counter()
            run_grid(ctx, only=[cell.index], quiet=True)
            rows.append(
                [
                    cell.index,
                    cell.cell_id,
                    f"{time.perf_counter() - started:.1f}",
                    f"{rss_mb():.0f}",
                ]
            )
    print(tabulate(rows, headers=["cell", "id", "seconds", "rss_mb"], tablefmt="github"))
    # Growth between the second and the last cell: the first cell pays TensorFlow's one-time set-up.
    first, last = float(rows[1][3]), float(rows[-1][3])
    growth = (last - first) / first
    print(
        f"cell_memory models={args.models} cells={len(rows)} rss_cell2_mb={first:.0f} "
        f"rss_last_mb={last:.0f} growth={growth:+.1%} "
        f"{'isolate cells (>10 %)' if growth > 0.10 else 'one process is fine (<=10 %)'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

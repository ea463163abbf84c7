"""Throughput of the input pipeline alone, against what training a MobileNetV2 consumes on this
machine.

    python benchmarks/input_pipeline.py [--data DIR] [--batches N]

Measures images/s of `make_dataset` on the training split at 224 px, batch 32, MobileNetV2
preprocessing: cold (decode every file) and cached (second epoch from the memory cache), each with
and without augmentation; then a MobileNetV2 (weights=None) + Dense head training step. The cached
pipeline should outrun training by >= 10x, so the input never starves the model.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(
    0, str(PROJECT_ROOT)
)  # run as a script from anywhere: `data_pipeline` lives at the root

IMAGE_SIZE, BATCH = 224, 32


def images_per_second(ds, epochs: int = 1) -> float:
    """Images/s of the last of `epochs` full passes (earlier passes fill a cache)."""
    for _ in range(epochs):
        started, count = time.perf_counter(), 0
        for batch in ds:
            count += int(batch[0].shape[0])
    return count / (time.perf_counter() - started)


def pipeline_rows(train, class_names) -> list[list]:
    import keras

    from data_pipeline import AugmentConfig, make_dataset

    rows = []
    for cache, epochs in ((None, 1), ("memory", 2)):
        for augment in (None, AugmentConfig()):
            ds = make_dataset(
                train,
                class_names,
                image_size=IMAGE_SIZE,
                batch_size=BATCH,
                shuffle_seed=0,
                cache=cache,
                augment=augment,
                preprocess=keras.applications.mobilenet_v2.preprocess_input,
            )
            rows.append(
                [
                    "cached" if cache else "cold",
                    "yes" if augment else "no",
                    images_per_second(ds, epochs),
                ]
            )
    return rows


def training_images_per_second(num_classes: int, batches: int) -> float:
    """MobileNetV2 (random init) + Dense head: images/s of `train_on_batch`, after one warm-up
    step."""
    import keras
    import numpy as np

    base = keras.applications.MobileNetV2(
        weights=None, include_top=False, input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3), pooling="avg"
    )
    model = keras.Sequential([base, keras.layers.Dense(num_classes, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (BATCH, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")
    y = np.eye(num_classes, dtype="float32")[rng.integers(0, num_classes, BATCH)]
    model.train_on_batch(x, y)
    started = time.perf_counter()
    for _ in range(batches):
        model.train_on_batch(x, y)
    return BATCH * batches / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    # The first paragraph of the docstring (one sentence, wrapped), on one line.
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument(
        "--data", type=Path, default=PROJECT_ROOT.parent / "shared" / "data" / "trashnet"
    )
    parser.add_argument("--batches", type=int, default=5, help="timed MobileNetV2 training steps")
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(f"skipped: {args.data} absent")
        return 0
    from tabulate import tabulate

    from data_pipeline import scan_dataset, split_dataset

    split = split_dataset(scan_dataset(args.data))
    train = split.subset("train")
    rows = pipeline_rows(train, split.class_names)
    training = training_images_per_second(len(split.class_names), args.batches)
    print(
        f"input pipeline on {args.data} ({len(train)} training images, {IMAGE_SIZE} px, batch "
        f"{BATCH}, {os.cpu_count()} CPU cores)"
    )
    print(
        tabulate(
            rows, headers=["pipeline", "augment", "images/s"], tablefmt="github", floatfmt=".0f"
        )
    )
    print(f"\nMobileNetV2 training step: {training:.1f} images/s")
    for pipeline, augment, speed in rows:
        if pipeline == "cached":
            print(
                f"cached pipeline (augment {augment}) / training: {speed / training:.1f}x (goal "
                ">= 10x)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

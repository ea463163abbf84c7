"""Training images/s through the real input pipeline vs from in-memory tensors (the compute-only
bound).

    python benchmarks/train_throughput.py [--data DIR] [--models simple_cnn,mobilenet_v2]
                                          [--image-size 128]

Per model: `fit` on the training split read from image files by `make_dataset` (decode, resize,
the model's preprocessing, augmentation on as in a default run, memory cache, prefetch), against
`fit` on a tensor of the same shape already in memory. Both run one untimed epoch first (graph
tracing, and for the pipeline the cache fill), then time `--epochs` epochs. The whole network
trains (as in phase 2 with everything unfrozen), the costliest step. Goal: ratio >= 0.9, i.e. the
input pipeline costs the training loop under 10 %.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))  # run as a script from anywhere


def timed_fit(model, dataset, epochs: int, images: int) -> float:
    """Images/s over `epochs` epochs after one untimed warm-up epoch."""
    model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    started = time.perf_counter()
    model.fit(dataset, epochs=epochs, verbose=0, shuffle=False)
    return images * epochs / (time.perf_counter() - started)


def measure(model_name: str, split, args) -> tuple[float, float]:
    """(pipeline images/s, in-memory images/s) for one model."""
    import keras
    import numpy as np
    import tensorflow as tf

    from data_pipeline import AugmentConfig, make_dataset
    from models import BuildSpec, build_model, get_entry, preprocess_function

    def fresh_model():
        keras.utils.set_random_seed(0)
        model = build_model(
            model_name,
            BuildSpec(
                num_classes=len(split.class_names), image_size=args.image_size, weights="none"
            ),
        ).model
        model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="categorical_crossentropy")
        return model

    train = split.subset("train")
    pipeline = make_dataset(
        train,
        split.class_names,
        image_size=args.image_size,
        batch_size=args.batch_size,
        preprocess=preprocess_function(get_entry(model_name).preprocess),
        augment=AugmentConfig(),
        shuffle_seed=0,
        cache="memory",
    )
    from_files = timed_fit(fresh_model(), pipeline, args.epochs, len(train))

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (len(train), args.image_size, args.image_size, 3)).astype("float32")
    y = np.eye(len(split.class_names), dtype="float32")[
        rng.integers(0, len(split.class_names), len(train))
    ]
    in_memory = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .batch(args.batch_size)
        .cache()
        .prefetch(tf.data.AUTOTUNE)
    )
    return from_files, timed_fit(fresh_model(), in_memory, args.epochs, len(train))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=PROJECT_ROOT.parent / "shared" / "data" / "trashnet"
    )
    parser.add_argument("--models", default="simple_cnn,mobilenet_v3_small,mobilenet_v2")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--epochs", type=int, default=1, help="timed epochs after the warm-up epoch"
    )
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"train_throughput: skipped, no dataset at {args.data} (pass --data DIR)")
        return 0
    from tabulate import tabulate

    from data_pipeline import scan_dataset, split_dataset

    split = split_dataset(scan_dataset(args.data))
    rows = []
    for name in args.models.split(","):
        from_files, in_memory = measure(name, split, args)
        rows.append(
            [name, f"{from_files:.1f}", f"{in_memory:.1f}", f"{from_files / in_memory:.3f}"]
        )
        print(
            f"train_throughput model={name} pipeline_img_s={from_files:.1f} "
            f"in_memory_img_s={in_memory:.1f} ratio={from_files / in_memory:.3f} goal>=0.9 "
            f"{'met' if from_files / in_memory >= 0.9 else 'missed'}",
            flush=True,
        )
    print(
        f"{len(split.subset('train'))} training images at {args.image_size} px, batch "
        f"{args.batch_size}, augmentation on, whole network trained"
    )
    print(
        tabulate(
            rows, headers=["model", "pipeline img/s", "in-memory img/s", "ratio"], tablefmt="github"
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

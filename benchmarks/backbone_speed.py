"""CPU speed of one member of each backbone family added in issue 19, with random weights.

    python benchmarks/backbone_speed.py [--size 112] [--batch 8] [--batches 4] [--models a,b]
                                        [--train-step]

Prints inference images/s (batch `--batch`, after one warm-up batch) at `--size` px and, with
`--train-step`, the time of one training step of the whole network (head + backbone, AdamW).
keras-hub encoders are built from their base configurations (the dimensions of the presets named in
the table) with random weights, so no preset download is needed; the speed does not depend on the
weights. 112 px is a multiple of both patch sizes (14, 16) and above Xception's and the Inceptions'
minimum sizes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KERAS = (
    "mobilenet_v2",
    "densenet121",
    "convnext_tiny",
    "xception",
    "inception_v3",
    "inception_resnet_v2",
    "nasnet_mobile",
    "vgg16",
)
# keras-hub encoder -> (class name, constructor arguments of the preset's architecture)
HUB = {
    "hub_vit_base_patch16_224_imagenet": (
        "ViTBackbone",
        dict(patch_size=16, num_layers=12, num_heads=12, hidden_dim=768, mlp_dim=3072),
    ),
    "hub_dinov2_small": (
        "DINOV2Backbone",
        dict(patch_size=14, num_layers=12, num_heads=6, hidden_dim=384, intermediate_dim=1536),
    ),
    "hub_clip_vit_base_patch16": (
        "CLIPVisionEncoder",
        dict(patch_size=16, num_layers=12, num_heads=12, hidden_dim=768, intermediate_dim=3072),
    ),
    "hub_siglip_base_patch16_224": (
        "SigLIPVisionEncoder",
        dict(patch_size=16, num_layers=12, num_heads=12, hidden_dim=768, intermediate_dim=3072),
    ),
}


def build(name: str, size: int):
    import keras_hub

    from models import BuildSpec, build_model
    from models.hub import hub_image_model

    spec = BuildSpec(num_classes=6, image_size=size, weights="none")
    if name not in HUB:
        return build_model(name, spec).model
    cls, kwargs = HUB[name]
    encoder = getattr(keras_hub.models, cls)(image_shape=(size, size, 3), **kwargs)
    converter = keras_hub.layers.ImageConverter(scale=1 / 127.5, offset=-1.0)
    return hub_image_model(encoder, converter, size, spec, name=name, pretrained=False)


def measure(
    name: str, size: int, batch: int, batches: int, train_step: bool
) -> tuple[float, float | None, float]:
    import keras
    import numpy as np

    keras.backend.clear_session()
    model = build(name, size)
    x = np.random.default_rng(0).uniform(0, 255, (batch, size, size, 3)).astype("float32")
    y = keras.utils.to_categorical(np.arange(batch) % 6, 6)
    model.predict_on_batch(x)
    started = time.perf_counter()
    for _ in range(batches):
        model.predict_on_batch(x)
    inference = batch * batches / (time.perf_counter() - started)
    if not train_step:
        return inference, None, model.count_params() / 1e6
    model.compile(optimizer=keras.optimizers.AdamW(1e-4), loss="categorical_crossentropy")
    model.train_on_batch(x, y)  # trace and build the optimizer
    started = time.perf_counter()
    model.train_on_batch(x, y)
    return inference, time.perf_counter() - started, model.count_params() / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--models", default=",".join((*KERAS, *HUB)))
    parser.add_argument(
        "--train-step", action="store_true", help="also time one whole-network training step"
    )
    args = parser.parse_args()
    print(
        f"{'model':38s} {'params_m':>9s} {'infer_img_s':>12s} {'train_step_s':>13s}   ({args.size} "
        f"px, batch {args.batch})"
    )
    for name in args.models.split(","):
        inference, step, params = measure(
            name, args.size, args.batch, args.batches, args.train_step
        )
        step_text = f"{step:13.2f}" if step is not None else f"{'-':>13s}"
        print(f"{name:38s} {params:9.2f} {inference:12.1f} {step_text}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Stronger training augmentation, the shift remedies of issue 37: a policy (RandAugment, AugMix),
random erasing, and MixUp/CutMix, which mix labels and class weights as well as pixels.

All of it works on 0..255 float32 batches before the model's own `preprocess`, inside the same
`make_dataset` pass as the basic augmentation, so the feature banks store the same images an online
cell trains on, and every draw comes from a `SeedGenerator` seeded per stand-alone epoch (same seed,
same pixels).

Keras 3.15 has layers for the image-level ones (`RandAugment`, `AugMix`, `RandomErasing`), used
here with `value_range=(0, 255)`. MixUp and CutMix are written out: Keras' `MixUp` and `CutMix` mix
images and labels but not the per-image class weights the recipe feeds as sample weights, and
`CutMix` caps its Beta alpha at 1.
"""

from __future__ import annotations

import random
import sys

import keras

POLICIES = ("basic", "randaugment", "augmix")
# Keras' own magnitudes, which `AugmentConfig.strength` scales (capped at 1, the layers' bound).
POLICY_FACTORS = {"randaugment": 0.5, "augmix": 0.3}


class SeededAugMix(keras.layers.AugMix):
    """Keras' `AugMix` with its chains' operations drawn from a seeded `random.Random`.

    Why: `AugMix.get_random_transformation` picks each chain's operations with Python's global
    `random` while the graph is traced, so two datasets built with the same seed differed. Here the
    module's `py_random` is this layer's own generator while it picks. In a `tf.data` map the pick
    happens once per trace, so one dataset (one stand-alone epoch) keeps its chains of operations
    for all its batches; the mixing weights and each operation's magnitudes are drawn per batch.
    """

    def __init__(self, *, seed: int, **kwargs) -> None:
        super().__init__(seed=seed, **kwargs)
        self.operation_chooser = random.Random(seed)

    def get_random_transformation(self, data, training=True, seed=None):
        module = sys.modules[keras.layers.AugMix.__module__]
        saved = module.py_random
        module.py_random = self.operation_chooser
        try:
            return super().get_random_transformation(data, training=training, seed=seed)
        finally:
            module.py_random = saved


def policy_layer(policy: str, strength: float, seed: int) -> keras.layers.Layer | None:
    """The Keras layer of `policy` (None for "basic", whose transforms `build_augmenter` makes)."""
    if policy == "basic":
        return None
    factor = min(1.0, POLICY_FACTORS[policy] * strength)
    if policy == "randaugment":
        return keras.layers.RandAugment(
            value_range=(0, 255), factor=factor, seed=seed, dtype="float32"
        )
    return SeededAugMix(value_range=(0, 255), factor=factor, seed=seed, dtype="float32")


def erasing_layer(probability: float, seed: int) -> keras.layers.Layer:
    """Random erasing of one noise-filled rectangle (2-33 % of the area) per image, with
    probability `probability` (Keras draws each image's probability from `factor`: a pair (p, p)
    fixes it)."""
    return keras.layers.RandomErasing(
        factor=(probability, probability), value_range=(0, 255), seed=seed, dtype="float32"
    )


class LabelMixer:
    """MixUp and CutMix of a batch: images, one-hot labels and per-image weights alike.

    Each image i is mixed with image `perm[i]` of the same batch (a seeded permutation) at a
    weight lam_i drawn from Beta(alpha, alpha): MixUp blends the pixels, CutMix pastes a box of
    `perm[i]` covering a fraction 1 - lam_i of the image (the box lies inside the image, so lam_i
    is exact). The label becomes `lam_i * y_i + (1 - lam_i) * y_perm[i]` (it sums to 1) and the
    class weight the same blend of the two images' weights, so each source image counts in the
    loss in proportion to its share of the pixels, with its own class weight. With both alphas
    set, each batch uses one of the two, chosen by a fair seeded coin (as timm does).

    Args:
        mixup: MixUp's Beta alpha; 0 = off.
        cutmix: CutMix's Beta alpha; 0 = off.
        seed: seeds the `SeedGenerator`; its state advances per batch, as the augmenter's does.
    """

    def __init__(self, mixup: float, cutmix: float, seed: int) -> None:
        if mixup <= 0 and cutmix <= 0:
            raise ValueError("LabelMixer needs a positive mixup or cutmix alpha")
        self.mixup, self.cutmix = float(mixup), float(cutmix)
        self.generator = keras.random.SeedGenerator(seed)

    def _beta(self, alpha: float, size):
        return keras.random.beta((size,), alpha, alpha, seed=self.generator)

    def _box_mask(self, lam, height, width):
        """1 inside each image's pasted box (side ratio sqrt(1 - lam)), and the exact lam."""
        ops = keras.ops
        size = ops.shape(lam)[0]
        ratio = ops.sqrt(1.0 - lam)
        box_h = ops.round(ratio * ops.cast(height, "float32"))
        box_w = ops.round(ratio * ops.cast(width, "float32"))
        u = keras.random.uniform((size, 2), seed=self.generator)
        top = ops.floor(u[:, 0] * (ops.cast(height, "float32") - box_h + 1.0))
        left = ops.floor(u[:, 1] * (ops.cast(width, "float32") - box_w + 1.0))
        rows = ops.arange(height, dtype="float32")[None, :, None]
        cols = ops.arange(width, dtype="float32")[None, None, :]
        inside_rows = (rows >= top[:, None, None]) & (rows < (top + box_h)[:, None, None])
        inside_cols = (cols >= left[:, None, None]) & (cols < (left + box_w)[:, None, None])
        mask = ops.cast(inside_rows & inside_cols, "float32")[..., None]
        area = ops.cast(height * width, "float32")
        return mask, 1.0 - box_h * box_w / area

    def __call__(self, images, labels, weights=None):
        """(images, labels, weights) mixed; `weights` may be None (then None comes back)."""
        ops = keras.ops
        shape = ops.shape(images)
        size, height, width = shape[0], shape[1], shape[2]
        perm = keras.random.shuffle(ops.arange(size), seed=self.generator)
        other = ops.take(images, perm, axis=0)
        candidates = []
        if self.mixup > 0:
            lam = self._beta(self.mixup, size)
            candidates.append(
                (lam[:, None, None, None] * images + (1.0 - lam)[:, None, None, None] * other, lam)
            )
        if self.cutmix > 0:
            mask, lam = self._box_mask(self._beta(self.cutmix, size), height, width)
            candidates.append((images * (1.0 - mask) + other * mask, lam))
        mixed, lam = candidates[0]
        if len(candidates) == 2:
            use_cutmix = keras.random.uniform((), seed=self.generator) < 0.5
            mixed = ops.where(use_cutmix, candidates[1][0], mixed)
            lam = ops.where(use_cutmix, candidates[1][1], lam)
        soft = lam[:, None] * labels + (1.0 - lam)[:, None] * ops.take(labels, perm, axis=0)
        if weights is not None:
            weights = lam * weights + (1.0 - lam) * ops.take(weights, perm, axis=0)
        return mixed, soft, weights

"""Training-time augmentation on 0..255 pixels before `preprocess`: one affine warp, then one colour
pass (the "basic" policy), or a stronger policy and random erasing (`data_pipeline.remedies`)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields

import keras

from data_pipeline.errors import DataError
from data_pipeline.remedies import POLICIES, LabelMixer, erasing_layer, policy_layer

# Magnitudes at strength 1.0: mild enough for photos of single objects on a plain background.
DEFAULTS = {
    "rotation": 0.1,
    "zoom": 0.15,
    "translation": 0.1,
    "shear": 0.1,
    "brightness": 0.15,
    "contrast": 0.15,
}

Bounds = float | tuple[float, float]
# The remedies of issue 37 (`data_pipeline.remedies`), left out of `AugmentConfig.key` when unset.
REMEDY_FIELDS = ("policy", "random_erasing", "mixup", "cutmix")


@dataclass(frozen=True)
class AugmentConfig:
    """How strongly training images are perturbed.

    Args:
        strength: scales every transform left at None; 0 turns them all off. Defaults to 1.0.
        flip: random horizontal flips. Defaults to True.
        rotation, zoom, translation, shear, brightness, contrast: the transform's factor f; each
            image draws its value from (-f, f), as a fraction of a full turn (rotation), of the size
            (zoom, below 1; translation), as the tangent of the shear angle (shear), a fraction of
            the 0..255 range (brightness) or a relative change of contrast (contrast). See
            `RandomAffine` and `RandomBrightnessContrast`. None means `strength * DEFAULTS[name]`, 0
            disables it.
        policy: "basic" (the transforms above), or "randaugment" / "augmix" (Keras' layers, at
            their default magnitude times `strength`), which replace the affine and colour
            transforms and keep the flip. Defaults to "basic".
        random_erasing: probability of erasing one noise-filled rectangle per image; 0 = off.
        mixup, cutmix: Beta alpha of MixUp / CutMix (`remedies.LabelMixer`), which also mix the
            labels and the class weights; 0 = off.
    """

    strength: float = 1.0
    flip: bool = True
    rotation: float | None = None
    zoom: float | None = None
    translation: float | None = None
    shear: float | None = None
    brightness: float | None = None
    contrast: float | None = None
    policy: str = "basic"
    random_erasing: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise DataError(
                f"augmentation policy must be one of {', '.join(POLICIES)}, got {self.policy!r}"
            )
        if not 0 <= self.random_erasing <= 1:
            raise DataError(
                "augmentation random_erasing is a probability in [0, 1], got "
                f"{self.random_erasing!r}"
            )
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("flip", "policy") or value is None:
                continue
            if not (math.isfinite(value) and value >= 0):
                raise DataError(
                    f"augmentation {f.name} must be a finite number >= 0, got {value!r}"
                )
        if self.factor("zoom") >= 1:  # a scale of 1 - zoom <= 0 would collapse or mirror the image
            raise DataError(
                f"augmentation zoom must be < 1, got {self.factor('zoom')!r} (strength "
                f"{self.strength!r})"
            )

    @property
    def mixes(self) -> bool:
        """Whether batches mix images, labels and weights (MixUp or CutMix)."""
        return self.mixup > 0 or self.cutmix > 0

    def key(self) -> dict:
        """The fields that decide the augmented images, for the feature banks' folder names: the
        remedies only when set, so banks stored before they existed keep their names."""
        values = dataclasses.asdict(self)
        for name in REMEDY_FIELDS:
            if values[name] == AugmentConfig.__dataclass_fields__[name].default:
                del values[name]
        return values

    def factor(self, name: str) -> float:
        """The resolved factor of one transform."""
        value = getattr(self, name)
        return self.strength * DEFAULTS[name] if value is None else float(value)


def _bounds(name: str, value: Bounds) -> tuple[float, float]:
    lower, upper = (-value, value) if isinstance(value, (int, float)) else value
    if not (math.isfinite(lower) and math.isfinite(upper) and lower <= upper):
        raise ValueError(
            f"{name} must be a number or a (lower, upper) pair of finite numbers, got {value!r}"
        )
    return float(lower), float(upper)


class RandomAffine(keras.layers.Layer):
    """Per-image random flip, rotation, zoom, translation and shear of an NHWC batch, as ONE
    bilinear warp.

    Why one layer: each Keras geometric layer (and RandomFlip, via a batch-wide `where`) rewrites
    the whole batch on its own, so the chain cost five passes; here the five 3x3 matrices are
    multiplied first and `ImageProjectiveTransformV3` runs once, with reflect fill. Resampling once
    also blurs less.

    The transforms act about the image centre, in the order the Keras chain had (flip, rotation,
    zoom, translation, shear), with the same factor meanings as the Keras layers named below. A
    number f draws uniformly from (-f, f) per image; a pair (lower, upper) from that range, so
    (x, x) fixes it.

    Args:
        rotation: fraction of a full turn; positive turns counter-clockwise (`RandomRotation`).
            Defaults to 0.
        zoom: the sampled region is (1 + z) times the image, so positive zooms out; one z for both
            axes (`RandomZoom` with `width_factor=None`). The lower bound must be > -1. Defaults to
            0.
        translation: fraction of the width (x) and of the height (y), drawn independently; positive
            moves the content right and down (`RandomTranslation`). Defaults to 0.
        shear: s_x and s_y drawn independently, the matrix `[[1, s_x], [s_y, 1]]` of `RandomShear`:
            a row at d pixels below the centre moves left by s_x * d. `RandomShear` shears about the
            top-left corner, which also shifts the image by s * size / 2; here the centre stays put.
            Defaults to 0.
        flip: mirror left-right with probability 0.5 (`RandomFlip("horizontal")`). Defaults to
            False.
        seed: seeds the `SeedGenerator`, whose state advances per call: the same seed repeats the
            same sequence of batches, and successive batches (epochs) differ. Defaults to None.
    """

    def __init__(
        self,
        rotation: Bounds = 0.0,
        zoom: Bounds = 0.0,
        translation: Bounds = 0.0,
        shear: Bounds = 0.0,
        flip: bool = False,
        seed: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.rotation, self.zoom = _bounds("rotation", rotation), _bounds("zoom", zoom)
        self.translation, self.shear = _bounds("translation", translation), _bounds("shear", shear)
        if self.zoom[0] <= -1:
            raise ValueError(f"zoom must stay above -1 (a scale of 1 + zoom > 0), got {zoom!r}")
        self.flip = flip
        self.generator = keras.random.SeedGenerator(seed)

    def transforms(self, batch_size: int, height: float, width: float):
        """`ImageProjectiveTransformV3` rows `[a0, a1, a2, b0, b1, b2, 0, 0]` (output pixel -> input
        pixel).

        Sizes may be tensors (the last batch of an epoch is smaller); a new draw on every call.
        """
        ops = keras.ops
        # One draw per call for every parameter: the generator advances once per batch.
        u = keras.random.uniform((batch_size, 7), seed=self.generator)

        def sample(i: int, bounds: tuple[float, float]):
            return bounds[0] + u[:, i] * (bounds[1] - bounds[0])

        mirror = ops.where(u[:, 0] < 0.5, -1.0, 1.0) if self.flip else ops.ones_like(u[:, 0])
        angle = 2.0 * math.pi * sample(1, self.rotation)
        scale = 1.0 + sample(2, self.zoom)
        tx, ty = sample(3, self.translation) * width, sample(4, self.translation) * height
        sx, sy = sample(5, self.shear), sample(6, self.shear)
        cos, sin = ops.cos(angle), ops.sin(angle)
        # Centred coordinates: input = F R Z (S @ output - t), with F = diag(mirror, 1), R the
        # rotation, Z = scale * I, S = [[1, sx], [sy, 1]], t = (tx, ty): the chain's matrices, first
        # layer leftmost.
        a00, a01 = mirror * scale * (cos - sin * sy), mirror * scale * (cos * sx - sin)
        a10, a11 = scale * (sin + cos * sy), scale * (sin * sx + cos)
        shift_x, shift_y = -mirror * scale * (cos * tx - sin * ty), -scale * (sin * tx + cos * ty)
        # Back to pixel coordinates: pixel centres sit at integers, so the image centre is ((W-1)/2,
        # (H-1)/2).
        cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
        a02 = cx - a00 * cx - a01 * cy + shift_x
        a12 = cy - a10 * cx - a11 * cy + shift_y
        zeros = ops.zeros_like(a00)
        return ops.stack([a00, a01, a02, a10, a11, a12, zeros, zeros], axis=1)

    def call(self, images, training: bool = True):
        if not training:
            return images
        shape = keras.ops.shape(images)
        height, width = (keras.ops.cast(side, "float32") for side in shape[1:3])
        return keras.ops.image.affine_transform(
            images,
            self.transforms(shape[0], height, width),
            interpolation="bilinear",
            fill_mode="reflect",
        )

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape


class RandomBrightnessContrast(keras.layers.Layer):
    """Per-image random brightness and contrast of an NHWC 0..255 batch, then the clip to 0..255.

    Why not `RandomBrightness` + `RandomContrast` + a clip: `RandomContrast` broadcasts a per-image,
    per-channel mean over the batch, which TF's CPU kernels run on a slow generic path: about 800
    images/s at 224 px on 2 cores, a large share next to the warp's 300-500. Here `x * f + bias`,
    with the bias tiled along the width (a fast broadcast), feeds about 3000 images/s.

    Same factor meanings as the Keras layers: brightness adds `d * 255`, d drawn from (-b, b);
    contrast scales each channel's deviation from its mean by f, drawn from (1 - c, 1 + c). One
    difference: the brightened image is not clipped before the contrast, only the result.

    Args:
        brightness: b, a fraction of the 0..255 range. Defaults to 0.
        contrast: c, the largest relative change of contrast. Defaults to 0.
        seed: seeds the `SeedGenerator` (see `RandomAffine`). Defaults to None.
    """

    def __init__(
        self, brightness: float = 0.0, contrast: float = 0.0, seed: int | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.brightness, self.contrast = brightness, contrast
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training: bool = True):
        ops = keras.ops
        if not training:
            return ops.clip(images, 0.0, 255.0)
        batch_size, _, width, _ = ops.shape(images)
        u = ops.reshape(
            keras.random.uniform((batch_size, 2), minval=-1.0, maxval=1.0, seed=self.generator),
            (-1, 2, 1, 1, 1),
        )
        delta, scale = 255.0 * self.brightness * u[:, 0], 1.0 + self.contrast * u[:, 1]
        # (x + delta - m) * scale + m with m = mean(x) + delta, the mean of the brightened image per
        # channel.
        bias = delta + ops.mean(images, axis=(1, 2), keepdims=True) * (1.0 - scale)
        return ops.clip(images * scale + ops.tile(bias, (1, 1, width, 1)), 0.0, 255.0)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape


def build_augmenter(cfg: AugmentConfig, seed: int) -> keras.layers.Pipeline:
    """A Pipeline of the enabled transforms, seeded from `seed`, ending in a clip to 0..255.

    `keras.layers.Pipeline` rather than Sequential: it is Keras' container for preprocessing layers
    inside tf.data, without the model machinery. Two fused layers rather than Keras' seven: the
    chain of RandomFlip, RandomRotation, RandomZoom, RandomTranslation, RandomShear,
    RandomBrightness and RandomContrast fed about 74 images/s at 224 px on 2 cores, a few times
    slower than this.

    Build a fresh one per dataset: its random state advances per batch, which is what makes the
    epochs differ while the same seed repeats the same sequence.
    """
    # float32 whatever the global policy: under mixed_float16 a layer would cast the pixels to
    # float16 (0..255 at three significant digits) and then mix them with float32 random draws.
    layers: list[keras.layers.Layer] = []
    basic = cfg.policy == "basic"
    geometry = {
        name: cfg.factor(name) if basic else 0.0
        for name in ("rotation", "zoom", "translation", "shear")
    }
    if cfg.flip or any(geometry.values()):
        layers.append(RandomAffine(**geometry, flip=cfg.flip, seed=seed, dtype="float32"))
    if not basic:
        layers.append(policy_layer(cfg.policy, cfg.strength, seed + 2))
    if cfg.random_erasing > 0:
        layers.append(erasing_layer(cfg.random_erasing, seed + 3))
    # Always last: the clip to 0..255 (the policy layers and erasing's noise can leave it).
    layers.append(
        RandomBrightnessContrast(
            cfg.factor("brightness") if basic else 0.0,
            cfg.factor("contrast") if basic else 0.0,
            seed=seed + 1,
            dtype="float32",
        )
    )
    return keras.layers.Pipeline(layers, name="augment")


def build_label_mixer(cfg: AugmentConfig, seed: int) -> LabelMixer | None:
    """The seeded MixUp/CutMix of `cfg` (None when both are off); a fresh one per dataset."""
    return LabelMixer(cfg.mixup, cfg.cutmix, seed + 4) if cfg.mixes else None

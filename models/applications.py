"""Keras application backbones under our shared head.

Each row declares the Keras class, its native input size and its preprocessing contract. The
contracts are Keras facts (keras 3.15): MobileNetV3 (`include_preprocessing=True`) and
EfficientNet/EfficientNetV2 rescale inside the model and want raw 0..255 pixels; MobileNet,
MobileNetV2 and the ResNet V2 family want `preprocess_input` ("tf": x / 127.5 - 1); ResNet50 (V1)
wants "caffe" (BGR, ImageNet mean subtracted), as does VGG16; DenseNet wants "torch" (x / 255, then
ImageNet mean/std); ConvNeXt normalises inside the model (raw 0..255); Xception, InceptionV3,
InceptionResNetV2 and NASNet want "tf" (Xception and the Inceptions at 299 px). Feeding the wrong
scale is the classic silent bug: a prior project fed 1/255 input to MobileNetV3 and got 25-42 %
accuracy.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from models.head import attach_head
from models.registry import register_model
from models.spec import BuildSpec, BuiltModel, ModelEntry
from models.weights import build_with_weights


@dataclass(frozen=True)
class Application:
    """One Keras application: registry name, Keras class, family, input size, contract, fine-tune
    depth."""

    name: str
    keras_class: str
    family: str
    input_size: int
    preprocess: str
    fine_tune_layers: int
    extra_kwargs: tuple[tuple[str, object], ...] = ()
    min_size: int = 32  # smallest side Keras accepts (Xception 71, the Inceptions 75)
    params_m: float | None = (
        None  # headless parameters (millions), for models too slow to build for --list-models
    )


# fine_tune_layers: roughly the last one or two stages of each backbone, so phase 2 adapts
# high-level features while the generic early filters keep their ImageNet values.
APPLICATIONS: tuple[Application, ...] = (
    Application("resnet50", "ResNet50", "resnet", 224, "caffe", 30),
    Application("resnet50v2", "ResNet50V2", "resnet_v2", 224, "tf", 40),
    Application("resnet101v2", "ResNet101V2", "resnet_v2", 224, "tf", 40),
    Application("resnet152v2", "ResNet152V2", "resnet_v2", 224, "tf", 40),
    Application("mobilenet", "MobileNet", "mobilenet", 224, "tf", 20),
    Application("mobilenet_v2", "MobileNetV2", "mobilenet_v2", 224, "tf", 50),
    Application(
        "mobilenet_v3_small",
        "MobileNetV3Small",
        "mobilenet_v3",
        224,
        "raw",
        40,
        (("include_preprocessing", True),),
    ),
    Application(
        "mobilenet_v3_large",
        "MobileNetV3Large",
        "mobilenet_v3",
        224,
        "raw",
        40,
        (("include_preprocessing", True),),
    ),
    *(
        Application(f"efficientnet_b{i}", f"EfficientNetB{i}", "efficientnet", size, "raw", 40)
        for i, size in enumerate((224, 240, 260, 300, 380, 456, 528, 600))
    ),
    *(
        Application(
            f"efficientnet_v2_{variant}",
            f"EfficientNetV2{variant.upper()}",
            "efficientnet_v2",
            size,
            "raw",
            40,
            (("include_preprocessing", True),),
        )
        for variant, size in (
            ("b0", 224),
            ("b1", 240),
            ("b2", 260),
            ("b3", 300),
            ("s", 384),
            ("m", 480),
            ("l", 480),
        )
    ),
    # DenseNet: fine-tune the last ~7 dense layers of conv5 (each is
    # BN-ReLU-Conv-BN-ReLU-Conv-Concat).
    *(
        Application(f"densenet{depth}", f"DenseNet{depth}", "densenet", 224, "torch", 50)
        for depth in (121, 169, 201)
    ),
    # ConvNeXt: the last stage (3 blocks); include_preprocessing=True is Keras's default
    # (Normalization inside).
    *(
        Application(
            f"convnext_{variant.lower()}",
            f"ConvNeXt{variant}",
            "convnext",
            224,
            "raw",
            30,
            (("include_preprocessing", True),),
            params_m=params,
        )
        for variant, params in (
            ("Tiny", None),
            ("Small", None),
            ("Base", 87.57),
            ("Large", 196.23),
            ("XLarge", 348.15),
        )
    ),
    Application("xception", "Xception", "xception", 299, "tf", 20, min_size=71),
    Application(
        "inception_v3", "InceptionV3", "inception", 299, "tf", 62, min_size=75
    ),  # mixed9 and mixed10
    Application(
        "inception_resnet_v2", "InceptionResNetV2", "inception", 299, "tf", 40, min_size=75
    ),
    Application("nasnet_mobile", "NASNetMobile", "nasnet", 224, "tf", 40),
    Application("vgg16", "VGG16", "vgg", 224, "caffe", 4),  # block5: three convs and the pool
)


def build_application(app: Application, entry: ModelEntry, spec: BuildSpec) -> BuiltModel:
    """ImageNet Keras application under the shared head; expects its `preprocess` contract.

    Module-level and bound with `functools.partial`, so a registry entry pickles into an isolated
    cell's child process.
    """
    import keras  # noqa: F811 (lazy: importing models must not import TensorFlow)

    constructor = getattr(keras.applications, app.keras_class)
    shape = spec.input_shape(entry.input_size)
    backbone = build_with_weights(
        app.name,
        spec.weights,
        lambda weights: constructor(
            include_top=False, weights=weights, input_shape=shape, **dict(app.extra_kwargs)
        ),
    )
    model = attach_head(
        backbone, spec.num_classes, spec.head, name=app.name, pretrained=spec.weights != "none"
    )
    return BuiltModel(model=model, backbone=backbone, entry=entry, weights=spec.weights)


for _app in APPLICATIONS:
    register_model(
        ModelEntry(
            name=_app.name,
            family=_app.family,
            kind="trained_backbone",
            builder=functools.partial(build_application, _app),
            input_size=_app.input_size,
            preprocess=_app.preprocess,
            fine_tune_layers=_app.fine_tune_layers,
            keras_class=_app.keras_class,
            min_input_size=_app.min_size,
            params_m=_app.params_m,
        )
    )

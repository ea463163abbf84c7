"""Total parameters of each image model as `--list-models` shows it: built with 6 classes, the
default head, its default input size and random weights (the count does not depend on the weights).

Registry data, so listing builds nothing (building them all took 70 s and 2 GB). After adding an
image model, add its count:
`build_model(name, BuildSpec(num_classes=6, weights="none")).model.count_params()`.
`tests/run/test_reliability.py` checks a sample against real builds and that every image model has
one.
"""

PARAMETER_COUNTS: dict[str, int] = {
    "convnext_small": 49685222,
    "convnext_tiny": 28050662,
    "densenet121": 7333574,
    "densenet169": 13102790,
    "densenet201": 18847430,
    "efficientnet_b0": 4411177,
    "efficientnet_b1": 6936845,
    "efficientnet_b2": 8162943,
    "efficientnet_b3": 11210677,
    "efficientnet_b4": 18166501,
    "efficientnet_b5": 29071741,
    "efficientnet_b6": 41583893,
    "efficientnet_b7": 64786973,
    "efficientnet_lite0": 3774630,
    "efficientnet_lite1": 4550950,
    "efficientnet_lite2": 5230774,
    "efficientnet_v2_b0": 6280918,
    "efficientnet_v2_b1": 7292730,
    "efficientnet_v2_b2": 9163748,
    "efficientnet_v2_b3": 13357764,
    "efficientnet_v2_l": 118108454,
    "efficientnet_v2_m": 53511994,
    "efficientnet_v2_s": 20692966,
    "inception_resnet_v2": 54763878,
    "inception_v3": 22360998,
    "mobilenet": 3524934,
    "mobilenet_v2": 2619590,
    "mobilenet_v3_large": 3276038,
    "mobilenet_v3_small": 1120502,
    "nasnet_mobile": 4573978,
    "resnet50": 24145926,
    "resnet50v2": 24123014,
    "resnet101v2": 43184774,
    "resnet152v2": 58889862,
    "simple_cnn": 1048038,
    "vgg16": 14879686,
    "xception": 21419694,
}

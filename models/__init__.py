"""Model registry and builders: which backbones exist, what input they want, how they are built.

As in timm, this package imports its model modules, whose `register_model(ModelEntry(...))` calls
fill the registry; `registry.py` itself imports none of them. Fusion entries are derived last,
from the image models.
"""

import models.applications  # noqa: F401  (registers the Keras applications)
import models.efficientnet_lite  # noqa: F401  (registers efficientnet_lite0/1/2, packaged weights)
import models.hub  # noqa: F401  (registers the keras-hub image encoders, hub_*)
import models.simple_cnn  # noqa: F401  (registers simple_cnn)
import models.text  # noqa: F401  (registers text_bert)
import models.zero_shot  # noqa: F401  (registers the zero-shot rows, zeroshot_*)
from models.errors import ModelError
from models.fusion import register_fusion_models
from models.head import HeadConfig, attach_head
from models.preprocessing import preprocess_function
from models.registry import (
    build_model,
    get_entry,
    list_image_models,
    list_models,
    register_model,
    resolve_model_names,
)
from models.simple_cnn_config import SimpleCNNConfig
from models.spec import KINDS, BuildSpec, BuiltModel, ModelEntry, ModelKind
from models.text import load_text_encoder, transformer_layers
from models.text_config import DEFAULT_TEXT_ENCODER, TextConfig
from models.weights import keras_cache_dir
from models.zero_shot import DEFAULT_PROMPTS, build_zero_shot

register_fusion_models()


def register_custom_layers() -> None:
    """Registers the suite's own layers with Keras: call before loading a saved hub or zero-shot
    model.
    """
    import models.custom_layers  # noqa: F401


__all__ = [
    "register_custom_layers",
    "BuildSpec",
    "BuiltModel",
    "DEFAULT_PROMPTS",
    "DEFAULT_TEXT_ENCODER",
    "HeadConfig",
    "KINDS",
    "ModelEntry",
    "ModelError",
    "ModelKind",
    "SimpleCNNConfig",
    "TextConfig",
    "attach_head",
    "build_model",
    "build_zero_shot",
    "get_entry",
    "keras_cache_dir",
    "list_image_models",
    "list_models",
    "load_text_encoder",
    "preprocess_function",
    "register_model",
    "resolve_model_names",
    "transformer_layers",
]

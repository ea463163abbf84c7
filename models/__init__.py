"""Model registry and builders: which backbones exist, what input they want, how they are built."""
from models.errors import ModelError
from models.head import HeadConfig, attach_head
from models.preprocessing import preprocess_function
from models.registry import ModelEntry, add_entry, get_entry, list_models, register_model, resolve_model_names
from models.simple_cnn_config import SimpleCNNConfig
from models.spec import BuildSpec, BuiltModel, build_model
from models.weights import keras_cache_dir

__all__ = [
    "BuildSpec",
    "BuiltModel",
    "HeadConfig",
    "ModelEntry",
    "ModelError",
    "SimpleCNNConfig",
    "add_entry",
    "attach_head",
    "build_model",
    "get_entry",
    "keras_cache_dir",
    "list_models",
    "preprocess_function",
    "register_model",
    "resolve_model_names",
]

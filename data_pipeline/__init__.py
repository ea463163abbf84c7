"""Datasets for the benchmark: scanning and checking images, leak-free splits, class weights and
tf.data input.

Never imports `models` or `benchmark`: the runner hands in each model's preprocessing and tokenizer.

Each name below loads its module on first use (PEP 562 `__getattr__`), so a configuration check
that needs `DataError` or `validate_alpha` does not wait for the TensorFlow `tfdata` imports.
"""

import importlib

# Exported name -> (module, name in it).
_EXPORTS = {
    "AugmentConfig": ("augment", "AugmentConfig"),
    "build_augmenter": ("augment", "build_augmenter"),
    "caption_from_filename": ("captions", "caption_from_filename"),
    "caption_leak_fraction": ("captions", "caption_leak_fraction"),
    "balanced_class_weights": ("class_weights", "balanced_class_weights"),
    "damped_class_weights": ("class_weights", "damped_class_weights"),
    "validate_alpha": ("class_weights", "validate_alpha"),
    "DataError": ("errors", "DataError"),
    "check_fold_partition": ("folds", "check_fold_partition"),
    "fold_splits": ("folds", "fold_splits"),
    "fold_summary": ("folds", "fold_summary"),
    "validation_share": ("folds", "validation_share"),
    "IMAGE_EXTENSIONS": ("images", "IMAGE_EXTENSIONS"),
    "image_problem": ("images", "image_problem"),
    "LeakReport": ("leaks", "LeakReport"),
    "MergedSources": ("merge", "MergedSources"),
    "merge_sources": ("merge", "merge_sources"),
    "source_counts": ("merge", "source_counts"),
    "source_names": ("merge", "source_names"),
    "split_sources": ("merge", "split_sources"),
    "make_prediction_batch": ("prediction", "make_prediction_batch"),
    "sample_data_dir": ("sample", "sample_data_dir"),
    "ScannedDataset": ("scan", "ScannedDataset"),
    "scan_dataset": ("scan", "scan_dataset"),
    "SourceSpec": ("source_specs", "SourceSpec"),
    "is_multi_source": ("source_specs", "is_multi_source"),
    "read_class_map": ("source_specs", "read_class_map"),
    "read_sources": ("source_specs", "read_sources"),
    "read_split_file": ("split_file", "read_split_file"),
    "write_split_file": ("split_file", "write_split_file"),
    "SplitTable": ("splits", "SplitTable"),
    "split_dataset": ("splits", "split_dataset"),
    "validate_ratios": ("splits", "validate_ratios"),
    "epoch_seed": ("tfdata", "epoch_seed"),
    "fill_shared_cache": ("tfdata", "fill_shared_cache"),
    "make_dataset": ("tfdata", "make_dataset"),
    "tta_view": ("tta", "tta_view"),
    "MAX_TTA_VIEWS": ("tta_views", "MAX_VIEWS"),
    "TTA_VIEWS": ("tta_views", "VIEWS"),
    "validate_tta": ("tta_views", "validate_tta"),
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

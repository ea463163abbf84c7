"""Datasets for the benchmark: scanning and checking images, leak-free splits, class weights and tf.data input.

Never imports `models` or `benchmark`: the runner hands in each model's preprocessing and tokenizer.
"""
from data_pipeline.augment import AugmentConfig, build_augmenter
from data_pipeline.captions import caption_from_filename, caption_leak_fraction
from data_pipeline.class_weights import balanced_class_weights, damped_class_weights, validate_alpha
from data_pipeline.errors import DataError
from data_pipeline.folds import check_fold_partition, fold_splits, fold_summary, validation_share
from data_pipeline.images import IMAGE_EXTENSIONS, image_problem
from data_pipeline.leaks import LeakReport
from data_pipeline.prediction import make_prediction_batch
from data_pipeline.sample import sample_data_dir
from data_pipeline.scan import ScannedDataset, scan_dataset
from data_pipeline.split_file import read_split_file, write_split_file
from data_pipeline.splits import SplitTable, split_dataset, validate_ratios
from data_pipeline.tfdata import epoch_seed, fill_shared_cache, make_dataset
from data_pipeline.tta import MAX_VIEWS as MAX_TTA_VIEWS
from data_pipeline.tta import VIEWS as TTA_VIEWS
from data_pipeline.tta import tta_view, validate_tta

__all__ = [
    "IMAGE_EXTENSIONS", "AugmentConfig", "DataError", "LeakReport", "ScannedDataset", "SplitTable",
    "balanced_class_weights", "build_augmenter", "caption_from_filename", "caption_leak_fraction",
    "check_fold_partition", "damped_class_weights", "epoch_seed",
    "fill_shared_cache", "fold_splits", "fold_summary", "image_problem", "make_dataset",
    "make_prediction_batch", "read_split_file", "sample_data_dir",
    "scan_dataset", "split_dataset", "validate_alpha", "validate_ratios", "validation_share", "write_split_file",
    "MAX_TTA_VIEWS", "TTA_VIEWS", "tta_view", "validate_tta",
]

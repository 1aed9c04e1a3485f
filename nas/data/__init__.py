"""Datasets for proxy training: YOLO-format data YAMLs and the built-in synthetic dataset."""

from nas.data.augment import color_jitter, letterbox
from nas.data.dataset import (
    Augment,
    Batch,
    DataSpec,
    ImageSet,
    LabelProblem,
    batches,
    clear_memory_cache,
    label_path,
    load_data_yaml,
    load_split,
    parse_labels,
)
from nas.data.synthetic import SyntheticConfig, synthetic_dataset

__all__ = [
    "Augment",
    "Batch",
    "DataSpec",
    "ImageSet",
    "LabelProblem",
    "SyntheticConfig",
    "batches",
    "clear_memory_cache",
    "color_jitter",
    "label_path",
    "letterbox",
    "load_data_yaml",
    "load_split",
    "parse_labels",
    "synthetic_dataset",
]

"""Datasets for proxy training: YOLO-format data YAMLs and the built-in synthetic dataset.

spec.py (a data YAML -> DataSpec, image lists), labels.py (label files), dataset.py (a letterboxed split, cached),
batches.py (training samples and batches), augment.py, synthetic.py, resolve.py (the one proxy-data resolver)."""

from nas.data.augment import color_jitter, letterbox
from nas.data.batches import Augment, Batch, batches, training_sample
from nas.data.dataset import ImageSet, clear_memory_cache, load_split
from nas.data.labels import LabelProblem, label_path, parse_labels
from nas.data.spec import DataSpec, list_images, load_data_yaml
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
    "list_images",
    "letterbox",
    "load_data_yaml",
    "load_split",
    "parse_labels",
    "synthetic_dataset",
    "training_sample",
]

"""The proxy's data, resolved in one place for the search, the audit, `nas evaluate` and the trainer.

None or "synthetic" is the built-in synthetic set at the proxy's imgsz, SYNTHETIC_TRAIN / SYNTHETIC_VAL images
unless a study recorded other counts; anything else is a data YAML (path or dict), a SyntheticConfig or a
resolved DataSpec. `data_sizes` answers what a memory check needs without making or decoding an image.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from nas.data.dataset import load_split
from nas.data.spec import DataSpec, list_images, load_data_yaml
from nas.data.synthetic import SyntheticConfig, synthetic_dataset

# the built-in synthetic set a default search (and `nas evaluate`) trains and scores on: train / val images
SYNTHETIC_TRAIN, SYNTHETIC_VAL = 512, 64

ProxyData = str | Path | dict | DataSpec | SyntheticConfig | None


def is_synthetic(data: ProxyData) -> bool:
    """True for the built-in set: None (or ""), or "synthetic" where no file or folder of that name exists."""
    return data is None or (isinstance(data, str) and (data == "" or data == "synthetic" and not Path(data).exists()))


def synthetic_config(imgsz: int, counts: Sequence[int] | None = None) -> SyntheticConfig:
    """The built-in set at imgsz with counts [n_train, n_val] (None: the search's SYNTHETIC_TRAIN/VAL)."""
    n_train, n_val = counts or (SYNTHETIC_TRAIN, SYNTHETIC_VAL)
    return SyntheticConfig(n_train=int(n_train), n_val=int(n_val), size=imgsz)


def resolve_data(data: ProxyData, imgsz: int, cache_dir: str | Path | None = None,
                 synthetic: Sequence[int] | None = None) -> DataSpec:
    """The DataSpec of the proxy's data; the built-in set (see synthetic_config) is made once under cache_dir."""
    if isinstance(data, DataSpec):
        return data
    if is_synthetic(data):
        data = synthetic_config(imgsz, synthetic)
    if isinstance(data, SyntheticConfig):
        return load_data_yaml(synthetic_dataset(data, cache_dir))
    return load_data_yaml(data)


def data_sizes(data: ProxyData, imgsz: int, cache_dir: str | Path | None = None,
               synthetic: Sequence[int] | None = None) -> tuple[int, int, int]:
    """(nc, train images, val images) of the proxy's data, without making or decoding an image."""
    if is_synthetic(data):
        data = synthetic_config(imgsz, synthetic)
    if isinstance(data, SyntheticConfig):
        return len(data.names), data.n_train, data.n_val
    spec = resolve_data(data, imgsz, cache_dir)
    where = str(spec.yaml) if spec.yaml else "the data dict"
    n_train, n_val = (len(list_images(getattr(spec, s), s, where)) for s in ("train", "val"))
    return spec.nc, n_train, n_val


def proxy_data(data: ProxyData, imgsz: int, synthetic: Sequence[int] | None = None,
               cache_dir: str | Path | None = None) -> DataSpec:
    """resolve_data, then both splits read and letterboxed once (kept in memory for the runs): a missing or
    empty split fails here, before anything is stored."""
    spec = resolve_data(data, imgsz, cache_dir, synthetic)
    for split in ("train", "val"):
        load_split(spec, split, imgsz)
    return spec


__all__ = ["SYNTHETIC_TRAIN", "SYNTHETIC_VAL", "ProxyData", "data_sizes", "is_synthetic", "proxy_data",
           "resolve_data", "synthetic_config"]

"""Every name the audit takes from the rest of nas, in one place: re-point these when modules move.

Heavy modules (torch, the trainer) are imported inside the functions, so `nas --help` stays fast.
"""

from __future__ import annotations

from typing import Any

from nas.device import parse_device as check_device
from nas.errors import NasError
from nas.storage import (
    artifact_store,
    existing_store,
    fail_stale_trials,
    is_sqlite,
    load_nas_study,
    load_study,
    mask_url,
    resolve_storage,
    store_folder,
    study_names,
    trial_heartbeat,
    upload_text,
)

__all__ = ["NasError", "artifact_store", "build_data", "check_device", "count_cost", "existing_store",
           "fail_stale_trials", "is_sqlite", "load_model_cfg", "load_nas_study", "load_study", "mask_url",
           "resolve_storage", "store_folder", "study_names", "train", "trainer_accepts", "trial_heartbeat",
           "upload_text"]


def train(cfg: dict, **kwargs: Any):
    """nas.train.train_and_evaluate (returns its ProxyResult)."""
    from nas.train import train_and_evaluate

    return train_and_evaluate(cfg, **kwargs)


def trainer_accepts(argument: str) -> bool:
    """True when train_and_evaluate takes this keyword argument (e.g. precision=, added later)."""
    import inspect

    from nas.train import train_and_evaluate

    return argument in inspect.signature(train_and_evaluate).parameters


def build_data(data: str | None, imgsz: int, synthetic: list[int] | None):
    """The DataSpec of a study's proxy: a data YAML, or the built-in synthetic set [n_train, n_val] at imgsz."""
    from nas.data import SyntheticConfig, load_split
    from nas.train import resolve_data

    if data and data != "synthetic":
        spec = resolve_data(data, imgsz)
    else:
        n_train, n_val = synthetic or (256, 64)
        spec = resolve_data(SyntheticConfig(n_train=int(n_train), n_val=int(n_val), size=imgsz), imgsz)
    for split in ("train", "val"):  # missing or empty splits fail here, before anything is stored
        load_split(spec, split, imgsz)
    return spec


def load_model_cfg(model: str) -> dict:
    """A built-in model name or a model YAML path -> the model YAML dict (NasError on bad input)."""
    from nas.model import load_cfg

    return load_cfg(model)


def count_cost(cfg: dict, imgsz: Any) -> tuple[float, int]:
    """(GFLOPs, params) of a model YAML dict at imgsz, counted on the meta device."""
    from nas.cost import count

    cost = count(cfg, imgsz)
    return float(cost.gflops), int(cost.params)

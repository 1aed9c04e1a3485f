"""One proxy-data resolver (nas.data.resolve): the search, the audit and the trainer resolve the same data."""

from __future__ import annotations

import pytest

from nas.audit.run import study_data
from nas.budget import Budget
from nas.data import SyntheticConfig, load_split, synthetic_dataset
from nas.data.resolve import SYNTHETIC_TRAIN, SYNTHETIC_VAL, data_sizes, is_synthetic
from nas.errors import NasError
from nas.search.data import resolve_search_data
from nas.search.options import SearchOptions
from nas.train import resolve_data

IMGSZ = 32


def test_search_audit_and_trainer_make_the_same_synthetic_set(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_CACHE", str(tmp_path))
    opts = SearchOptions(space="", budget=Budget(), imgsz=IMGSZ)  # the search's own counts
    searched = resolve_search_data(opts)
    audited = study_data(opts.proxy())
    recorded_before_counts = study_data({**opts.proxy(), "synthetic": None})
    trained = resolve_data(None, IMGSZ)  # train_and_evaluate(model) and `nas evaluate` without --data
    assert searched == audited == recorded_before_counts == trained
    assert len(load_split(searched, "train", IMGSZ)) == SYNTHETIC_TRAIN
    assert len(load_split(searched, "val", IMGSZ)) == SYNTHETIC_VAL
    assert data_sizes(None, IMGSZ) == (searched.nc, SYNTHETIC_TRAIN, SYNTHETIC_VAL)  # counted, not made


def test_search_audit_and_trainer_read_the_same_data_yaml(tmp_path):
    yaml_path = synthetic_dataset(SyntheticConfig(n_train=6, n_val=3, size=IMGSZ, nc=2), tmp_path)
    opts = SearchOptions(space="", budget=Budget(), imgsz=IMGSZ, data=str(yaml_path))
    searched = resolve_search_data(opts)
    assert searched == study_data(opts.proxy()) == resolve_data(str(yaml_path), IMGSZ)
    assert searched.nc == 2 and searched.yaml == yaml_path.resolve()
    assert data_sizes(str(yaml_path), IMGSZ) == (2, 6, 3)


def test_other_recorded_counts_are_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_CACHE", str(tmp_path))
    opts = SearchOptions(space="", budget=Budget(), imgsz=IMGSZ, synthetic_train=5, synthetic_val=2)
    spec = resolve_search_data(opts)
    assert spec == study_data(opts.proxy()) == resolve_data(SyntheticConfig(n_train=5, n_val=2, size=IMGSZ), IMGSZ)
    assert (len(load_split(spec, "train", IMGSZ)), len(load_split(spec, "val", IMGSZ))) == (5, 2)


def test_only_none_or_the_word_is_the_built_in_set(tmp_path, monkeypatch):
    assert is_synthetic(None) and is_synthetic("synthetic") and not is_synthetic("data.yaml")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "synthetic").mkdir()  # a folder of that name is the user's data
    assert not is_synthetic("synthetic")
    with pytest.raises(NasError, match="data YAML not found"):
        resolve_data("synthetic", IMGSZ)

"""`nas search` with latency: the gate on the table's prediction, --objective latency, the table kept in the
study and reused, measured latency of trained candidates, and the bad inputs. A 64 px space keeps the table
and every measurement fast; every trial really trains on a tiny synthetic set."""

from __future__ import annotations

import importlib.util
import json

import optuna
import pytest
import yaml
from click.testing import CliRunner

from nas.budget import Budget
from nas.cli import main
from nas.cost.gate import gate
from nas.data import SyntheticConfig, synthetic_dataset
from nas.latency import LatencyTable, latency_key, predict
from nas.latency.study import LatencySettings, study_table
from nas.record import read
from nas.space import Architecture, load_space

SPACE = {
    "base": "yolov5n",
    "imgsz": 64,
    "width_multiple": [0.25, 0.5],
    "hyperparameters": {"SGE": {"groups": [4, 8]}},
    "insert": [{"after": 23, "name": "P5", "blocks": ["none", "SGE", "GE"]}],
}
GE_DEFAULTS = {"extent": "global", "param_gather": True, "excite_mlp": True}  # GE's defaults in a space
TINY = ["--epochs", "1", "--imgsz", "64", "--batch", "8", "--seed", "0", "--sampler", "random"]


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """One latency-objective, latency-budget search of 2 trained candidates (module-wide, read-only after)."""
    root = tmp_path_factory.mktemp("latsearch")
    data = str(synthetic_dataset(SyntheticConfig(n_train=16, n_val=8, size=64, nc=2), cache_dir=root / "data"))
    (root / "space.yaml").write_text(yaml.safe_dump(SPACE))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        r = run("--budget", "1000ms", "--objective", "latency", "--trials", "2", data=data)
    assert r.exit_code == 0, r.output
    return root, data


def run(*args: str, data: str):
    return CliRunner().invoke(main, ["search", "--space", "space.yaml", "--data", data, *TINY, *args])


def load() -> optuna.Study:
    return optuna.load_study(study_name="space", storage="sqlite:///studies/nas.db")


def snapshot(study: optuna.Study) -> tuple:
    return (dict(study.user_attrs), [(t.number, t.state, dict(t.user_attrs)) for t in study.get_trials()])


def test_every_candidate_records_its_predicted_latency_and_the_trained_ones_a_measured_one(searched, monkeypatch):
    root, _ = searched
    monkeypatch.chdir(root)
    study = load()
    space = load_space("space.yaml")
    table = LatencyTable.from_dict(study.user_attrs["latency_table"])
    assert table.key == latency_key(space, "torch", 1, "cpu", nc=2)
    assert study.user_attrs["objective"] == "latency" and study.user_attrs["latency_on"] == {"runtime": "torch",
                                                                                             "threads": 1}
    assert study.metric_names == ["fitness", "latency_ms"]
    trained = 0
    for t in study.get_trials():
        r = read(t)
        arch = Architecture.from_dict(r.arch)
        assert r.latency_ms == pytest.approx(predict(table, arch), abs=1e-3)
        assert r.cost == pytest.approx(predict(table, arch))  # the front's cost axis is the latency
        assert r.constraints["latency_ms"] == pytest.approx(predict(table, arch) - 1000.0)
        if r.outcome is not None and r.outcome.value == "trained":
            trained += 1
            assert r.measured_latency_ms > 0 and r.measured_latency["runtime"] == "torch"
            assert 0 <= r.measured_latency["spread"] and isinstance(r.measured_latency["noisy"], bool)
    assert trained == 2


def test_a_resume_reuses_the_stored_table_and_another_key_measures_it_again(searched, monkeypatch):
    root, data = searched
    monkeypatch.chdir(root)
    import nas.latency.study as S

    def no_measure(*_a, **_kw):
        raise AssertionError("the stored table matches: it must be reused")

    monkeypatch.setattr(S, "measure_table", no_measure)
    r = run("--budget", "1000ms", "--objective", "latency", "--trials", "2", data=data)
    assert r.exit_code == 0, r.output
    monkeypatch.undo()
    monkeypatch.chdir(root)
    study = load()
    space = load_space("space.yaml")
    said: list[str] = []
    table = study_table(study, space, LatencySettings("latency", "torch", 2), Budget(latency_ms=1000.0), nc=2,
                        say=said.append)
    assert table.threads == 2 and "threads" in said[0] and "measuring it again" in said[0]
    # a busy machine says so in one warning line
    assert all(line.startswith("warning: ") and "spread above 10%" in line for line in said[1:])
    assert len(said) == 1 + table.noisy
    assert LatencyTable.from_dict(study.user_attrs["latency_table"]).threads == 2


def test_the_gate_rejects_on_the_predicted_latency():
    space = load_space(_space_file())
    table = LatencyTable.from_dict(_fake_table(space))
    narrow = Architecture(0.33, 0.25, {"P5": {"block": "none"}})
    with_ge = Architecture(0.33, 0.25, {"P5": {"block": "GE", **GE_DEFAULTS}})
    assert gate(space, narrow, Budget(latency_ms=12.0), table=table).latency_ms == pytest.approx(10.0)
    assert not gate(space, narrow, Budget(latency_ms=12.0), table=table).over_budget
    verdict = gate(space, with_ge, Budget(latency_ms=12.0), table=table)
    assert verdict.over_budget and not verdict.counted and verdict.latency_ms == pytest.approx(15.0)
    with pytest.raises(ValueError, match="latency"):  # a latency budget without a table is a bug, not a pass
        gate(space, with_ge, Budget(latency_ms=12.0))


def _space_file():
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp()) / "space.yaml"
    path.write_text(yaml.safe_dump(SPACE))
    return path


def _fake_table(space) -> dict:
    """A table with round numbers: base 10 ms at width 0.25 (20 at 0.5), SGE +1 ms, GE +5 ms."""
    lat = {"spread": 0.0, "repeats": 5, "runtime": "torch", "threads": 1, "device": "cpu", "noisy": False}
    slots = [{"point": "P5", "block": "none", "hyperparameters": {}, "ms": 0.0, "spread": 0.0, "noisy": False},
             {"point": "P5", "block": "GE", "hyperparameters": GE_DEFAULTS, "ms": 5.0, "spread": 0.0, "noisy": False}]
    slots += [{"point": "P5", "block": "SGE", "hyperparameters": {"groups": g}, "ms": 1.0, "spread": 0.0,
               "noisy": False} for g in (4, 8)]
    return {"format": 1, "key": {"runtime": "torch", "threads": 1, "device": "cpu", "imgsz": [64, 64]},
            "multiples": [{"depth_multiple": 0.33, "width_multiple": w, "base": {"ms": 10.0 * k, **lat},
                           "slots": slots} for k, w in ((1, 0.25), (2, 0.5))]}


@pytest.mark.parametrize("args, message", [
    (["--budget", "80parsecs"], "--budget '80parsecs'"),
    (["--budget", "-5ms"], "must be a positive time"),
    (["--budget", "80ms", "--latency-on", "tensorrt"], "--latency-on 'tensorrt' is not one of"),
    (["--budget", "80ms", "--objective", "foo"], "--objective 'foo' is not one of"),
    (["--budget", "80ms", "--latency-threads", "0"], "--latency-threads"),
    (["--budget", "1000ms", "--objective", "gflops"], "was searched with --objective latency, not gflops"),
])
def test_bad_latency_input_is_one_line_and_changes_nothing(searched, monkeypatch, args, message):
    root, data = searched
    monkeypatch.chdir(root)
    before = snapshot(load())
    r = run("--trials", "3", *args, data=data)
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], r.stderr
    assert snapshot(load()) == before


def test_onnxruntime_missing_is_one_line(searched, monkeypatch):
    root, data = searched
    monkeypatch.chdir(root)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    before = snapshot(load())
    r = run("--budget", "1000ms", "--objective", "latency", "--latency-on", "onnxruntime", data=data)
    assert r.exit_code == 2 and r.stderr.strip().splitlines() == [
        "error: --latency-on onnxruntime needs onnx and onnxruntime: pip install 'nas[onnx]'"], r.stderr
    assert snapshot(load()) == before


def test_pareto_and_export_best_show_the_latency_of_a_latency_study(searched, monkeypatch):
    root, _ = searched
    monkeypatch.chdir(root)
    study = load()
    r = CliRunner().invoke(main, ["pareto", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["objective"] == "latency" and doc["latency_table"]["key"]["runtime"] == "torch"
    front = {f["trial"]: f for f in doc["front"]}
    for t in study.get_trials():
        if t.number in front:
            assert front[t.number]["latency_ms"] == pytest.approx(read(t).latency_ms)
            assert front[t.number]["measured_latency_ms"] == pytest.approx(read(t).measured_latency_ms)
    r = CliRunner().invoke(main, ["pareto"])
    assert r.exit_code == 0 and "fitness vs latency" in r.stdout and "measured" in r.stdout, r.output
    r = CliRunner().invoke(main, ["export-best", "--out", "best.yaml", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    t = study.trials[doc["trial"]]
    assert doc["latency_ms"] == pytest.approx(read(t).latency_ms)
    header = [line for line in open("best.yaml").read().splitlines() if line.startswith("# latency:")]
    assert len(header) == 1 and f"{read(t).latency_ms:.1f} ms predicted" in header[0]
    assert "torch, 1 thread" in header[0] and "the front's cost axis" in header[0]

"""Measured latency: the method (min of interleaved repeats, spread, noisy flag), the per-slot table and its
prediction, the budget's time forms. Tiny models at 64 px so that it stays fast."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from nas.errors import NasError
from nas.latency import Latency, LatencyTable, check_runtime, measure, measure_many, measure_table, predict
from nas.latency.measure import layer_latency
from nas.latency.table import latency_key, space_latencies
from nas.space import Architecture, load_space

TINY_SPACE = {
    "base": "yolov5n",
    "imgsz": 64,
    "width_multiple": [0.25],
    "hyperparameters": {"SGE": {"groups": [4, 8]}},
    "insert": [{"after": 17, "name": "P3", "blocks": ["none", "SGE"]},
               {"after": 23, "name": "P5", "blocks": ["none", "GE"]}],
}
FAST = {"warmup": 1, "repeats": 3, "retries": 0}


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> object:
    path = Path(tmp_path_factory.mktemp("space")) / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_SPACE))
    return load_space(path)


def steady_then(durations):
    """A fake clock: each (start, stop) pair of calls is one run lasting the next of `durations` (ms)."""
    state = {"t": 0.0, "calls": 0, "i": 0}

    def clock() -> float:
        if state["calls"] % 2:  # the stop of a run
            state["t"] += durations[state["i"] % len(durations)] / 1e3
            state["i"] += 1
        state["calls"] += 1
        return state["t"]

    return clock


def test_measure_reports_the_minimum_and_restores_threads():
    before = torch.get_num_threads()
    lat = measure("yolov5n", 64, threads=1, **FAST)
    assert torch.get_num_threads() == before
    assert lat.ms > 0 and lat.repeats == 3 and lat.runtime == "torch" and lat.threads == 1 and lat.device == "cpu"
    assert lat.spread >= 0 and Latency.from_dict(json.loads(json.dumps(lat.to_dict()))) == lat


def test_the_statistic_is_the_minimum_and_the_spread_median_over_minimum():
    lat = measure("yolov5n", 64, warmup=0, repeats=5, retries=0, clock=steady_then([10, 12, 10.8, 30, 10.5]))
    assert lat.ms == pytest.approx(10.0)
    assert lat.spread == pytest.approx(0.08) and not lat.noisy  # median 10.8 over min 10: under the 10% threshold


def test_a_busy_machine_is_flagged_noisy_after_the_retries():
    clock = steady_then([10, 20, 20, 20, 20])  # every attempt: min 10, median 20
    lat = measure("yolov5n", 64, warmup=0, repeats=5, retries=2, clock=clock)
    assert lat.noisy and lat.spread == pytest.approx(1.0)
    assert "NOISY" in lat.describe()


def test_a_retry_keeps_the_quieter_attempt():
    clock = steady_then([10, 20, 20, 10, 10, 10])  # attempt 1 (3 runs): spread 1.0; attempt 2: spread 0
    lat = measure("yolov5n", 64, warmup=0, repeats=3, retries=1, clock=clock)
    assert not lat.noisy and lat.spread == pytest.approx(0.0, abs=1e-9) and lat.ms == pytest.approx(10.0)


def test_runs_are_interleaved_between_models(monkeypatch):
    import importlib

    m = importlib.import_module("nas.latency.measure")
    order = []
    real = m._torch_runner

    def tagged(model, imgsz, device):
        run = real(model, imgsz, device)
        tag = model.yaml["width_multiple"]
        return lambda: (order.append(tag), run())

    monkeypatch.setattr(m, "_torch_runner", tagged)
    narrow = {**yaml.safe_load((Path(m.__file__).parents[1] / "model/cfg/yolov5n.yaml").read_text()),
              "width_multiple": 0.125}
    measure_many(["yolov5n", narrow], 64, warmup=0, repeats=3, retries=0, clock=steady_then([1.0]))
    assert order == [0.25, 0.125] * 3


@pytest.mark.parametrize("runtime, threads, message", [("tensorrt", 1, "tensorrt"), ("torch", 0, "at least 1")])
def test_bad_runtime_or_threads_is_one_nas_error(runtime, threads, message):
    with pytest.raises(NasError, match=message):
        check_runtime(runtime, threads)


def test_onnxruntime_latency():
    pytest.importorskip("onnxruntime")
    lat = measure("yolov5n", 64, runtime="onnxruntime", threads=1, **FAST)
    assert lat.runtime == "onnxruntime" and lat.device == "cpu" and lat.ms > 0


def test_table_predicts_base_plus_slot_deltas_and_round_trips_as_json(space):
    calls = []
    table = measure_table(space, progress=lambda done, total: calls.append((done, total)), **FAST)
    assert calls == [(1, 2), (2, 2)]  # one group per point
    key = table.key
    assert key == latency_key(space) and key["runtime"] == "torch" and key["threads"] == 1
    assert key["torch"] == torch.__version__ and key["space_hash"] == space.hash and key["imgsz"] == [64, 64]
    again = LatencyTable.from_dict(json.loads(json.dumps(table.to_dict())))
    assert again.to_dict() == table.to_dict() and again.noisy == table.noisy
    (m,) = table.multiples
    assert [(s.point, s.block, s.hyperparameters) for s in m.slots] == [
        ("P3", "none", {}), ("P3", "SGE", {"groups": 4}), ("P3", "SGE", {"groups": 8}),
        ("P5", "none", {}), ("P5", "GE", m.slots[4].hyperparameters)]
    assert m.slots[0].ms == m.slots[3].ms == 0.0 and m.base.ms > 0
    base = Architecture(0.33, 0.25, {"P3": {"block": "none"}, "P5": {"block": "none"}})
    assert predict(table, base) == m.base.ms
    both = Architecture(0.33, 0.25, {"P3": {"block": "SGE", "groups": 8}, "P5": {"block": "GE", **m.slots[4]
                                                                                  .hyperparameters}})
    assert predict(table, both) == pytest.approx(m.base.ms + m.slots[2].ms + m.slots[4].ms)
    (rng,) = space_latencies(table, space)
    assert rng.min_ms <= rng.base_ms <= rng.max_ms
    with pytest.raises(NasError, match="not in the latency table"):
        predict(table, Architecture(0.33, 0.25, {"P3": {"block": "SGE", "groups": 2}, "P5": {"block": "none"}}))
    with pytest.raises(NasError, match="width 0.5"):
        predict(table, Architecture(0.33, 0.5, base.choices))
    with pytest.raises(ValueError, match="format"):
        LatencyTable.from_dict({"format": 0})


def test_layer_latency_keeps_the_layers_of_the_fastest_pass():
    n = 25  # yolov5n's layers
    # pass 1: every layer 2 ms (50 in all), pass 2: 1 ms each but layer 0 takes 30 (54), pass 3: 1.5 ms (37.5)
    durations = [2.0] * n + [30.0] + [1.0] * (n - 1) + [1.5] * n
    ms = layer_latency("yolov5n", 64, warmup=0, repeats=3, clock=steady_then(durations))
    assert len(ms) == n and ms == pytest.approx([1.5] * n)  # not the per-layer minimum (1 ms) of mixed passes
    real = layer_latency("yolov5n", 64, warmup=1, repeats=2)
    assert len(real) == n and all(v > 0 for v in real)


def test_profile_latency_times_the_model_and_each_layer(tmp_path):
    from click.testing import CliRunner

    from nas.cli import main

    r = CliRunner().invoke(main, ["profile", "yolov5n", "--imgsz", "64", "--latency", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    lat = Latency.from_dict(doc["latency"])
    assert lat.runtime == "torch" and lat.threads == 1 and lat.ms > 0 and lat.repeats == 5
    assert all(layer["ms"] > 0 for layer in doc["per_layer"])
    r = CliRunner().invoke(main, ["profile", "yolov5n", "--imgsz", "64", "--latency"])
    assert r.exit_code == 0 and "latency at batch 1, 64x64:" in r.stdout and " ms " in r.stdout, r.output
    plain = json.loads(CliRunner().invoke(main, ["profile", "yolov5n", "--imgsz", "64", "--json"]).stdout)
    assert plain["latency"] is None and plain["per_layer"][0]["ms"] is None
    for args, message in ((["--latency-on", "tensorrt"], "--latency-on 'tensorrt' is not one of"),
                          (["--latency-threads", "0"], "--latency-threads"),
                          (["--device", "tpu"], "--device 'tpu' is unknown")):
        r = CliRunner().invoke(main, ["profile", "yolov5n", "--imgsz", "64", "--latency", *args])
        lines = r.stderr.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], r.output


def test_profile_latency_in_onnxruntime_times_the_whole_model_only():
    pytest.importorskip("onnxruntime", reason="the optional onnx extra (pip install 'nas[onnx]') is not installed")
    from click.testing import CliRunner

    from nas.cli import main

    r = CliRunner().invoke(main, ["profile", "yolov5n", "--imgsz", "64", "--latency", "--latency-on", "onnxruntime",
                                  "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["latency"]["runtime"] == "onnxruntime" and doc["latency"]["ms"] > 0
    assert all(layer["ms"] is None for layer in doc["per_layer"])


def test_nas_space_latency_shows_each_slots_ms_beside_its_gflops(space):
    from click.testing import CliRunner

    from nas.cli import main

    r = CliRunner().invoke(main, ["space", space.path, "--latency", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["latency_table"]["key"] == latency_key(space)
    m = doc["multiples"][0]
    by_point: dict[str, list[float]] = {}
    for s in m["slots"]:
        assert isinstance(s["ms"], float) and "gflops" in s
        by_point.setdefault(s["point"], []).append(s["ms"])
        if s["block"] == "none":
            assert s["ms"] == 0.0
    assert m["min_ms"] == pytest.approx(m["base_ms"] + sum(min(v) for v in by_point.values()))
    assert m["max_ms"] == pytest.approx(m["base_ms"] + sum(max(v) for v in by_point.values()))
    text = CliRunner().invoke(main, ["space", space.path, "--latency"]).stdout
    assert "+ms" in text and "fastest ms" in text and "latency table: torch, 1 thread" in text
    plain = json.loads(CliRunner().invoke(main, ["space", space.path, "--json"]).stdout)
    assert plain["latency_table"] is None and plain["multiples"][0]["slots"][0]["ms"] is None
    r = CliRunner().invoke(main, ["space", space.path, "--latency", "--latency-on", "tensorrt"])
    assert r.exit_code == 2 and r.stderr.strip().splitlines() == [
        "error: --latency-on 'tensorrt' is not one of: torch, onnxruntime"], r.output

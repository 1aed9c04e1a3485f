"""Latency wherever GFLOPs shows in the results: the front along either cost, `nas pareto`'s table, JSON and plot
(--x latency), the closest-to-budget table, on a hand-made study whose GFLOPs and latency fronts differ."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest
from click.testing import CliRunner
from optuna.trial import TrialState, create_trial
from rich.console import Console

from nas import storage as S
from nas.cli import main
from nas.front.pareto import cost_value, pareto_front
from nas.front.report import front_report
from nas.front.table import excess_text, front_table
from nas.latency import LatencyTable
from nas.record import read

optuna.logging.set_verbosity(optuna.logging.WARNING)

KEY = {"space_hash": "0123456789abcdef", "imgsz": [640, 640], "nc": 80, "runtime": "torch", "threads": 1,
       "device": "cpu (test CPU)", "torch": "2.13.0"}
# (fitness, GFLOPs, predicted ms, measured ms or None, choices): BiFormer is cheap in GFLOPs and slow in time
TRIALS = [
    (0.30, 4.47, 66.0, 67.0, "none", True),
    (0.34, 4.47, 68.0, 68.5, "SGE", False),
    (0.36, 5.34, 106.0, 110.0, "BiFormer", False),
    (0.37, 9.51, 100.0, 101.0, "wide", False),
    (0.20, 9.90, 130.0, None, "slow", False),  # over the 120 ms budget: never trained
]


def make_study(folder: Path, objective: str, with_latency: bool = True) -> str:
    url = f"sqlite:///{folder}/studies/nas.db"
    attrs: dict[str, Any] = {"space_path": "neck.yaml", "base": "yolov5n", "imgsz": [640, 640], "points": ["P3"],
                             "budget": {"gflops": None, "params": None, "latency_ms": 120.0},
                             "proxy": {"data": "synthetic", "epochs": 4, "imgsz": 128, "batch": 8, "seed": 0},
                             "objective": objective}
    if with_latency:
        attrs["latency_table"] = LatencyTable(dict(KEY)).to_dict()
        attrs["latency_on"] = {"runtime": "torch", "threads": 1}
    study = S.create_or_resume(url, "lat", space_hash="0123456789abcdef", attrs=attrs)
    for fitness, gflops, ms, measured, name, baseline in TRIALS:
        over = ms > 120.0
        user = {"choices": {"P3": name}, "gflops": gflops, "params": 1_800_000, "fitness": fitness,
                "mAP50": fitness + 0.1, "mAP50-95": fitness - 0.01, "baseline": baseline,
                "arch": {"depth_multiple": 0.33, "width_multiple": 0.375 if name in ("wide", "slow") else 0.25},
                "outcome": "rejected" if over else "trained"}
        if with_latency:
            user["latency_ms"] = ms
            if measured is not None:
                user["measured_latency"] = {"ms": measured, "spread": 0.02, "noisy": False, "repeats": 5,
                                            "runtime": "torch", "threads": 1, "device": "cpu"}
        cost = ms if objective == "latency" else gflops
        study.add_trial(create_trial(state=TrialState.COMPLETE, values=[0.0 if over else fitness, cost],
                                     user_attrs=user, constraints={"latency_ms": ms - 120.0}))
    return url


@pytest.fixture
def lat_study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    return make_study(tmp_path, "latency")


def names(trials) -> list[str]:
    return [read(t).choices["P3"] for t in trials]


def test_the_front_along_each_cost_differs_where_blocks_are_cheap_in_gflops_and_slow(lat_study):
    study = optuna.load_study(study_name="lat", storage=lat_study)
    assert names(pareto_front(study)) == ["none", "SGE", "wide"]  # the study's objective: predicted latency
    assert names(pareto_front(study, "latency")) == ["none", "SGE", "wide"]
    assert names(pareto_front(study, "gflops")) == ["SGE", "BiFormer", "wide"]  # BiFormer looks cheap in GFLOPs
    r = read(study.get_trials()[2])
    assert (cost_value(r), cost_value(r, "gflops"), cost_value(r, "latency")) == (106.0, 5.34, 106.0)


def test_front_report_carries_latency_and_the_table_it_was_predicted_by(lat_study):
    report = front_report(optuna.load_study(study_name="lat", storage=lat_study))
    assert report.objective == "latency" and report.has_latency
    assert report.latency_table["describe"] == "torch, 1 thread, cpu (test CPU), 640x640"
    rows = {r.choices["P3"]: r for r in report.front}
    assert rows["SGE"].latency_ms == 68.0 and rows["SGE"].measured_latency_ms == 68.5
    assert rows["wide"].d_latency_ms == pytest.approx(100.0 - 66.0)
    doc = report.to_json()
    assert doc["objective"] == "latency" and doc["latency_table"]["key"] == KEY
    assert [f["latency_ms"] for f in doc["front"]] == [66.0, 68.0, 100.0]


def render(table) -> str:
    console = Console(width=250, record=True)
    console.print(table)
    return console.export_text()


def test_the_table_shows_latency_columns_only_when_the_study_priced_latency(lat_study, tmp_path):
    text = render(front_table(front_report(optuna.load_study(study_name="lat", storage=lat_study))))
    assert "fitness vs latency" in text and "measured" in text and "Δlatency" in text
    assert "68.5 ms" in text and "+34.0 ms" in text and "cpu (test CPU)" in text
    plain = tmp_path / "plain"
    plain.mkdir()
    url = make_study(plain, "gflops", with_latency=False)
    text = render(front_table(front_report(optuna.load_study(study_name="lat", storage=url))))
    assert "fitness vs GFLOPs" in text and "latency" not in text and "measured" not in text


def test_nas_pareto_json_and_plot_along_latency(lat_study):
    r = CliRunner().invoke(main, ["pareto", "--storage", lat_study, "--json", "--plot", "front.png", "--x",
                                  "latency"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["objective"] == "latency" and [f["choices"]["P3"] for f in doc["front"]] == ["none", "SGE", "wide"]
    assert Path("front.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = CliRunner().invoke(main, ["pareto", "--storage", lat_study, "--plot", "gf.png", "--x", "gflops"])
    assert r.exit_code == 0, r.output
    assert "latency table: torch, 1 thread" in r.output and Path("gf.png").stat().st_size > 1000


def test_plotting_latency_of_a_study_without_it_is_one_error_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = make_study(tmp_path, "gflops", with_latency=False)
    r = CliRunner().invoke(main, ["pareto", "--storage", url, "--plot", "f.png", "--x", "latency"])
    assert r.exit_code == 2
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "records no latency" in lines[0]
    assert not Path("f.png").exists()


def test_excess_text_names_each_limit_in_its_unit():
    assert excess_text({"gflops": 0.4123, "latency_ms": 12.34}) == "gflops +0.412, latency +12.3 ms"
    assert excess_text({"params": 250_000}).startswith("params +")
    assert excess_text(None) == "marked over budget"


def test_cost_order_measures_how_differently_gflops_and_latency_rank(lat_study):
    from nas.audit.costs import cost_order

    records = [read(t) for t in optuna.load_study(study_name="lat", storage=lat_study).get_trials()]
    order = cost_order(records)
    # GFLOPs 4.47, 4.47, 5.34, 9.51, 9.90 against 66, 68, 106, 100, 130 ms: one pair of 9 untied is reversed
    assert order.n == 5 and order.n_measured == 4
    assert order.discordant == pytest.approx(1 / 9)
    assert order.pair == {"lighter": {"trial": 2, "gflops": 5.34, "ms": 106.0},
                          "heavier": {"trial": 3, "gflops": 9.51, "ms": 100.0}}
    assert 0 < order.tau < 1 and 0 < order.tau_measured < 1
    assert "trial 2 has fewer GFLOPs than trial 3" in order.line() and "6.0 ms more" in order.line()
    assert cost_order(records[:1]) is None
    no_latency = [read(t) for t in optuna.load_study(
        study_name="lat", storage=make_study(Path("plain").resolve(), "gflops", with_latency=False)).get_trials()]
    assert cost_order(no_latency) is None

"""`nas audit`: rank statistics against scipy, candidate spread, resume after a kill, bad input, end to end.

The end-to-end tests really train (64 px, 1-2 epochs, 16 synthetic images), like tests/test_search.py.
"""

from __future__ import annotations

import json
import math

import numpy as np
import optuna
import pytest
import yaml
from click.testing import CliRunner
from optuna.trial import TrialState
from scipy import stats

from nas.audit.candidates import Candidate, select_candidates, spread
from nas.audit.jobs import aux_name, plan_jobs
from nas.audit.report import CandidateRuns, build_report, formed_epoch
from nas.audit.stats import bootstrap_interval, kendall_tau, loss_ema, pooled_sd, spearman_rho
from nas.cli import main
from nas.data import SyntheticConfig, synthetic_dataset

optuna.logging.set_verbosity(optuna.logging.WARNING)

# ------------------------------------------------------------------------------------------ statistics

CASES = [
    ([1, 2, 3, 4, 5, 6], [2, 1, 4, 3, 6, 5]),
    ([0.1, 0.4, 0.4, 0.2, 0.9, 0.3, 0.3], [1.0, 2.0, 2.0, 0.5, 3.0, 1.0, 4.0]),  # ties on both sides
    ([3, 3, 1, 2, 5], [5, 4, 3, 2, 1]),
    (list(np.random.default_rng(1).normal(size=30)), list(np.random.default_rng(2).normal(size=30))),
]


@pytest.mark.parametrize(("x", "y"), CASES)
def test_tau_and_rho_match_scipy(x, y):
    assert kendall_tau(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)
    assert spearman_rho(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_constant_side_is_nan_like_scipy():
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3])) and math.isnan(spearman_rho([1, 2, 3], [4, 4, 4]))


def test_bootstrap_interval_is_deterministic_and_holds_the_estimate():
    rng = np.random.default_rng(0)
    x = rng.normal(size=14)
    y = x + rng.normal(scale=0.8, size=14)
    lo, hi = bootstrap_interval(x, y, kendall_tau, n=400, seed=3)
    assert (lo, hi) == bootstrap_interval(x, y, kendall_tau, n=400, seed=3)
    assert lo <= kendall_tau(x, y) <= hi and hi - lo > 0.05
    assert (lo, hi) != bootstrap_interval(x, y, kendall_tau, n=400, seed=4)


def test_noise_and_loss_scores():
    assert pooled_sd([[1.0, 3.0], [5.0, 5.0, 8.0]]) == pytest.approx(math.sqrt((2 + 6) / 3))
    assert loss_ema([4.0, 2.0], decay=0.5) == pytest.approx(3.0)
    assert formed_epoch([{"epoch": 1, "tau": 0.0}, {"epoch": 2, "tau": 0.65}, {"epoch": 3, "tau": 0.7}]) == 2


def test_report_on_fixed_runs():
    """Proxy ranks like the reference except one swap; GFLOPs rank backwards; two seeds."""
    ref = [0.1, 0.2, 0.3, 0.4, 0.5]
    prox = [0.05, 0.15, 0.12, 0.3, 0.35]
    cands = []
    for i in range(5):
        hist = [{"epoch": 1, "fitness": 0.01 * i, "loss": 5.0 - i}, {"epoch": 2, "fitness": prox[i], "loss": 4.0 - i}]
        cands.append(CandidateRuns(f"t{i}", f"#{i}", gflops=10.0 - i, params=100 - i,
                                   proxy={0: {"fitness": prox[i], "history": hist},
                                          1: {"fitness": prox[i] + (0.01 if i % 2 else -0.01), "history": hist}},
                                   reference={"fitness": ref[i]}))
    r = build_report("s", cands, proxy_epochs=2, reference_epochs=8, seed=0, seeds=1, jobs_done=15, jobs_total=15,
                     n_boot=200)
    assert r.n == 5 and r.finished
    assert r.correlations["proxy"].tau == pytest.approx(stats.kendalltau(prox, ref).statistic)
    assert r.correlations["GFLOPs"].tau == pytest.approx(-1.0)
    assert r.correlations["loss sum"].tau == pytest.approx(1.0)  # lower loss = better
    assert r.noise_sd == pytest.approx(0.01 / math.sqrt(2))  # each pair differs by 0.01
    assert [p["epoch"] for p in r.tau_per_epoch] == [1, 2] and r.tau_per_epoch[0]["tau"] == pytest.approx(1.0)
    assert "0.0" in r.verdict and "noise" in r.verdict
    doc = json.loads(json.dumps(r.to_json()))
    assert doc["correlations"]["proxy"]["n"] == 5


def _perfect_proxy(n: int, seed1: list[float]) -> list[CandidateRuns]:
    """n candidates whose seed-0 proxy orders them exactly like the reference; seed 1 scores them as given."""
    cands = []
    for i in range(n):
        hist = [{"epoch": 1, "fitness": 0.01 * i, "loss": 5.0 - i}]
        cands.append(CandidateRuns(f"t{i}", f"#{i}", gflops=1.0 + i, params=100 + i,
                                   proxy={0: {"fitness": 0.01 * i, "history": hist},
                                          1: {"fitness": seed1[i], "history": hist}},
                                   reference={"fitness": 0.1 + 0.02 * i}))
    return cands


def test_verdict_weighs_the_number_of_candidates_and_seed_agreement():
    """τ 1.00 alone is not trust: too few candidates, or seeds that disagree, make the verdict cautious."""
    def verdict_for(n, seed1):
        return build_report("s", _perfect_proxy(n, seed1), proxy_epochs=1, reference_epochs=4, seed=0, seeds=1,
                            n_boot=200).verdict

    agreeing = [0.01 * i + 0.001 for i in range(12)]
    assert "trust the order of the front" in verdict_for(12, agreeing)
    few = verdict_for(6, agreeing[:6])  # the README's old demo: τ 1.00 [1.00, 1.00] over 6 candidates
    assert "trust the order" not in few and "only 6 candidates" in few and "--candidates 10" in few
    assert "broad shape" in few
    shuffled = [0.01 * i for i in (5, 0, 9, 2, 11, 7, 1, 4, 10, 3, 8, 6)]  # seed 1 orders them almost at random
    noisy = verdict_for(12, shuffled)
    assert "trust the order" not in noisy and "another seed reorders them (seed τ" in noisy
    assert "only" not in noisy.split("reorders")[0]  # 12 candidates are enough: only the seeds are doubted


# --------------------------------------------------------------------------------- candidate selection


def test_spread_covers_the_range_with_the_required_points():
    rng = np.random.default_rng(0)
    points = [(float(g), float(f)) for g, f in zip(rng.uniform(1, 10, 40), rng.uniform(0, 0.5, 40), strict=True)]
    picked = spread(points, 8, required=[5])
    assert len(picked) == 8 and 5 in picked and picked == spread(points, 8, required=[5])
    g = sorted(p[0] for p in points)
    f = sorted(p[1] for p in points)
    pg = [points[i][0] for i in picked]
    pf = [points[i][1] for i in picked]
    assert (min(pg), max(pg), min(pf), max(pf)) == (g[0], g[-1], f[0], f[-1])
    gaps = np.diff(sorted(pg))
    assert gaps.max() < 3.0  # no large hole in the GFLOPs range (uniform over 1..10, 8 picks)


def test_select_includes_baseline_and_front():
    cands = []
    for i, (g, f) in enumerate([(5, 0.2), (1, 0.05), (2, 0.1), (3, 0.02), (4, 0.15), (6, 0.01), (7, 0.3), (3, 0.12)]):
        cands.append(Candidate(f"trial{i}", f"#{i}", g, 0, "", trial=i, baseline=i == 3, fitness=f))
    front = {1, 2, 7, 4, 0, 6}  # not dominated in (GFLOPs min, fitness max)
    assert {c.trial for c in select_candidates(cands, 7)} == front | {3}
    chosen = {c.trial for c in select_candidates(cands, 6)}  # too few places: baseline kept, front thinned
    assert 3 in chosen and len(chosen) == 6 and chosen <= front | {3}
    assert {c.trial for c in select_candidates(cands, 3)} >= {3}


def test_plan_orders_cheap_useful_runs_first():
    a = Candidate("trial1", "#1", 1.0, 1, "", trial=1, run0={"fitness": 0.1})
    b = Candidate("model:x:1", "x", 2.0, 1, "")
    jobs = plan_jobs([a, b], proxy_epochs=2, reference_epochs=8, seed=0, seeds=2)
    assert [j.key for j in jobs] == ["model:x:1|proxy|e2|s0", "trial1|reference|e8|s0", "model:x:1|reference|e8|s0",
                                     "trial1|proxy|e2|s1", "model:x:1|proxy|e2|s1", "trial1|proxy|e2|s2",
                                     "model:x:1|proxy|e2|s2"]


# ------------------------------------------------------------------------------------- end to end

SPACE = {
    "base": "yolov5n",
    "imgsz": 640,
    "width_multiple": [0.25, 0.5],
    "hyperparameters": {"SGE": {"groups": [4, 8]}},
    "insert": [{"after": 23, "name": "P5", "blocks": ["none", "SGE", "GE"]}],
}
STORAGE = "sqlite:///studies/nas.db"


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    """A study with 4 trained candidates (64 px, 1 epoch, 16 images), built once and copied per test."""
    root = tmp_path_factory.mktemp("audit")
    data = synthetic_dataset(SyntheticConfig(n_train=16, n_val=8, size=64, nc=2), cache_dir=root / "data")
    (root / "space.yaml").write_text(yaml.safe_dump(SPACE))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        r = CliRunner().invoke(main, ["search", "--space", "space.yaml", "--budget", "100gflops", "--data", str(data),
                                      "--epochs", "1", "--imgsz", "64", "--batch", "8", "--trials", "4",
                                      "--sampler", "random", "--no-early-stop", "--storage", STORAGE])
    assert r.exit_code == 0, r.output
    return root


@pytest.fixture
def workdir(tiny_study, tmp_path, monkeypatch):
    import shutil

    shutil.copytree(tiny_study / "studies", tmp_path / "studies")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def audit(*args: str):
    return CliRunner().invoke(main, ["audit", "--study", "space", "--reference-epochs", "2", *args])


def aux_trials():
    return optuna.load_study(study_name=aux_name("space"), storage=STORAGE).get_trials()


def test_audit_end_to_end_resumes_without_redoing_runs(workdir):
    import os

    os.mkfifo(workdir / "pipe.png")
    r = audit("--candidates", "3", "--seeds", "1", "--plot", "pipe.png")  # refused before any run
    assert r.exit_code == 2 and "--plot pipe.png is a FIFO (named pipe)" in r.output, r.output
    assert aux_name("space") not in optuna.get_all_study_names(STORAGE)
    r = audit("--candidates", "3", "--seeds", "1", "--max-jobs", "2")
    assert r.exit_code == 0, r.output
    first = {t.user_attrs["job"]: t.user_attrs["wall_time"] for t in aux_trials() if t.state == TrialState.COMPLETE}
    assert len(first) == 2 and "2/6 runs finished" in r.output and "not enough finished runs" in r.output
    from nas.record import audit_summary

    assert audit_summary(optuna.load_study(study_name="space", storage=STORAGE)) is None  # not finished yet

    r = audit("--candidates", "3", "--seeds", "1", "--json", "--plot", "audit.png")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["ran"] == 4 and doc["finished"] and doc["n"] == 3 and doc["stored"]
    done = {t.user_attrs["job"]: t.user_attrs["wall_time"] for t in aux_trials() if t.state == TrialState.COMPLETE}
    assert len(done) == 6 and all(done[k] == v for k, v in first.items())  # the first two were not redone
    for t in aux_trials():  # the history stays in the storage, out of the dashboard's table
        history = t.system_attrs["nas:history"]
        assert len(history) == t.user_attrs["epochs"] and "loss" in history[0]
        assert all(len(json.dumps(v)) <= 200 for v in t.user_attrs.values()), t.user_attrs
    assert set(doc["correlations"]) >= {"proxy", "GFLOPs", "params", "loss sum", "mean of seeds"}
    assert (workdir / "audit.png").stat().st_size > 1000
    study = optuna.load_study(study_name="space", storage=STORAGE)
    summary = audit_summary(study)
    assert summary.n_candidates == 3 and summary.reference_epochs == 2 and summary.verdict == doc["verdict"]
    assert summary.noise == pytest.approx(2 * doc["noise_sd"]) and summary.tau == doc["correlations"]["proxy"]["tau"]
    import optuna_dashboard

    note = optuna_dashboard.get_note(study)  # the dashboard shows the audit: note, plot and report
    assert summary.verdict in note and "Kendall τ" in note and "![" in note
    arts = optuna.artifacts.get_all_artifact_meta(study, storage=study._storage)
    assert sorted(m.filename for m in arts) == ["audit.json", "audit.png"]
    values = [t.values for t in study.get_trials()]
    r = audit("--candidates", "3", "--seeds", "1")  # all done: nothing runs, the table is printed
    assert r.exit_code == 0 and "6/6 runs finished (0 now" in r.output and "verdict" in r.output
    assert [t.values for t in study.get_trials()] == values  # search trials never touched
    assert len(optuna.artifacts.get_all_artifact_meta(study, storage=study._storage)) == 2  # not uploaded again
    r = CliRunner().invoke(main, ["pareto", "--json"])  # the audit's runs do not hide the only searched study
    assert r.exit_code == 0 and json.loads(r.stdout)["study"] == "space", r.output


def test_a_job_left_running_by_a_killed_process_is_redone(workdir):
    assert audit("--candidates", "3", "--seeds", "0", "--max-jobs", "1").exit_code == 0
    aux = optuna.load_study(study_name=aux_name("space"), storage=STORAGE)
    waiting = aux.ask()  # what kill -9 leaves: a claimed job, RUNNING forever
    killed = waiting.user_attrs["job"]
    r = audit("--candidates", "3", "--seeds", "0", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["recovered"] == [waiting.number]
    trials = aux_trials()
    assert trials[waiting.number].state == TrialState.FAIL
    assert [t.user_attrs["job"] for t in trials if t.state == TrialState.COMPLETE].count(killed) == 1
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3


def test_journal_storage_recovers_a_job_whose_heartbeat_stopped(workdir):
    """Server and journal storages share jobs between processes: a dead one is found by its silent heartbeat."""
    import time

    from nas.record import HEARTBEAT_ATTR
    from nas.storage import resolve_storage

    journal = "journal:studies/nas.journal"
    optuna.copy_study(from_study_name="space", from_storage=STORAGE, to_storage=resolve_storage(journal))
    args = ["audit", "--storage", journal, "--candidates", "3", "--seeds", "0", "--reference-epochs", "2"]
    assert CliRunner().invoke(main, [*args, "--max-jobs", "0"]).exit_code == 0  # enqueue only
    aux = optuna.load_study(study_name=aux_name("space"), storage=resolve_storage(journal))
    claimed = aux.ask()  # a worker that claimed a job, beat once long ago, then died
    aux._storage.set_trial_system_attr(claimed._trial_id, HEARTBEAT_ATTR, time.time() - 3600)
    r = CliRunner().invoke(main, [*args, "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["recovered"] == [claimed.number] and doc["finished"] and doc["ran"] == 3
    assert optuna.study.get_all_study_names(STORAGE) == ["space"]  # the SQLite study was only read


@pytest.mark.parametrize(("args", "words"), [
    (["--study", "nope"], "no study 'nope'"),
    (["--models", "yolov5n", "yolov5q", "yolov5s"], "yolov5q"),
    (["--models", "yolov5n"], "at least 3"),
    (["--candidates", "2"], "--candidates"),
    (["--reference-epochs", "1"], "--reference-epochs 1"),
    (["--storage", "sqlite:///studies/missing.db"], "missing.db"),
])
def test_bad_input_is_one_error_line_and_changes_nothing(workdir, args, words):
    r = CliRunner().invoke(main, ["audit", "--study", "space", *args])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], r.stderr
    assert optuna.study.get_all_study_names(STORAGE) == ["space"]


def test_too_few_scored_trials(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study = optuna.create_study(storage="sqlite:///nas.db", study_name="s", directions=["maximize", "minimize"])
    study.set_user_attr("proxy", {"data": "synthetic", "epochs": 1, "imgsz": 64, "batch": 8, "seed": 0,
                                  "synthetic": [8, 4]})
    study.set_user_attr("space_hash", "0123456789abcdef")  # what marks a study that nas search made
    r = CliRunner().invoke(main, ["audit", "--storage", "sqlite:///nas.db"])
    assert r.exit_code == 2 and "0 distinct scored trial(s)" in r.stderr, r.output


def test_proxy_repeats_train_at_the_studys_precision_and_references_in_fp32(workdir, monkeypatch):
    import nas.audit.jobs as jobs

    study = optuna.load_study(study_name="space", storage=STORAGE)
    study.set_user_attr("proxy", {**study.user_attrs["proxy"], "precision": "bf16"})
    seen = []
    real = jobs.train_job

    def spy(model_yaml, data, **kw):
        seen.append((kw["epochs"], kw.get("precision")))
        return real(model_yaml, data, **{**kw, "precision": "fp32"})  # bf16 needs a CPU that has it: run fp32

    monkeypatch.setattr(jobs, "train_job", spy)
    monkeypatch.setattr("nas.train.precision.cpu_has_native_bf16", lambda: True)
    r = audit("--candidates", "3", "--seeds", "1", "--max-jobs", "4")
    assert r.exit_code == 0, r.output
    assert sorted(set(seen)) == [(1, "bf16"), (2, "fp32")], seen  # proxy: 1 epoch at bf16; reference: fp32


def test_a_candidate_that_cannot_fit_in_memory_is_refused_before_any_job(workdir, monkeypatch):
    import sqlite3

    from nas.train import memory

    def dump() -> list[str]:
        with sqlite3.connect(workdir / "studies" / "nas.db") as db:
            return list(db.iterdump())

    before = dump()
    monkeypatch.setattr(memory, "available_memory", lambda: (1 << 20, "a 1 MiB test limit"))
    r = audit()
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --imgsz 64 --batch 8 does not fit in memory"), r.stderr
    assert "1 MiB test limit" in lines[0] and "GiB" in lines[0]
    assert optuna.study.get_all_study_names(STORAGE) == ["space"]  # no audit study was made
    assert dump() == before  # every row of the searched study as it was

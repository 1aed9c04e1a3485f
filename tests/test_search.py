"""`nas search` end to end: budget gate, records, dedup, resume, faults, several workers on shared storages.

Every trial here really trains (a tiny synthetic set at 64 px, one epoch), so these tests exercise the
same path users run; they are the slowest of the suite.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
import yaml
from click.testing import CliRunner
from optuna.trial import TrialState

from nas import storage as S
from nas.cli import main
from nas.data import SyntheticConfig, synthetic_dataset
from nas.record import describe, read, read_history, read_model_yaml

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {
    "base": "yolov5n",
    "imgsz": 640,
    "width_multiple": [0.25, 0.5],  # 4.5 vs 16.4 GFLOPs: the wide ones are over a 10 GFLOPs budget
    "hyperparameters": {"SGE": {"groups": [4, 8]}},
    "insert": [{"after": 23, "name": "P5", "blocks": ["none", "SGE", "GE"]}],
}
TINY = ["--epochs", "1", "--imgsz", "64", "--batch", "8", "--seed", "0"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> str:
    cache = tmp_path_factory.mktemp("data")
    return str(synthetic_dataset(SyntheticConfig(n_train=16, n_val=8, size=64, nc=2), cache_dir=cache))


@pytest.fixture
def workdir(tmp_path, monkeypatch, tiny_data) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    return tmp_path


def search(*extra: str, data: str, space: str = "space.yaml", budget: str = "10gflops"):
    args = ["search", "--space", space, "--budget", budget, "--data", data, *TINY, *extra]
    return CliRunner().invoke(main, args)


def load(storage: str = "sqlite:///studies/nas.db", name: str = "space") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage)


def outcomes(study) -> list[str]:
    return [t.user_attrs.get("outcome", t.state.name) for t in study.get_trials(deepcopy=False)]


def test_end_to_end_records_and_resume(workdir, tiny_data):
    r = search("--trials", "3", "--sampler", "random", data=tiny_data)
    assert r.exit_code == 0, r.output
    assert (workdir / "studies" / "nas.db").is_file()
    study = load()
    assert study.metric_names == ["fitness", "GFLOPs"]
    assert study.user_attrs["budget"] == {"gflops": 10.0, "params": None}
    trials = study.get_trials()
    store = S.existing_store(None)
    base = trials[0]
    assert base.user_attrs["baseline"] is True and base.user_attrs["choices"] == {"P5": "none"}
    trained = [t for t in trials if t.user_attrs.get("outcome") == "trained"]
    assert len(trained) == 3
    for t in trained:
        a = t.user_attrs
        for key in ("choices", "model_hash", "gflops", "params", "fitness", "mAP50",
                    "mAP50-95", "wall_time", "seed"):
            assert key in a, key
        assert read(t).arch["choices"]["P5"]["block"] == t.params["P5.block"]  # a system attr: no table column
        assert a["candidate"] == describe(read(t))  # every choice, width and depth too, in one short column
        assert a["candidate"].startswith(f"w{t.params['width_multiple']:g} d")
        assert "model_yaml" not in a and "history" not in a  # artifacts: the dashboard's table stays readable
        assert t.values == [pytest.approx(a["fitness"]), pytest.approx(a["gflops"])]
        history = read_history(study, t, store)
        assert len(history) == 1 and history[0]["epoch"] == 1
        assert t.constraints["gflops"] == pytest.approx(a["gflops"] - 10.0)
        assert t.system_attrs["constraints"] == [pytest.approx(a["gflops"] - 10.0)]  # what optuna-dashboard reads
        assert yaml.safe_load(read_model_yaml(study, t, store))["head"][-1][2] == "Detect"
    for t in trials:
        if t.user_attrs.get("outcome") == "rejected":
            assert t.user_attrs["over_budget"] and t.constraints["gflops"] > 0 and t.values[0] == 0.0
            assert "fitness" not in t.user_attrs  # never trained
    assert any((workdir / "studies").glob("nas-artifacts/**/*")), "model YAML artifacts are kept beside the db"

    n = len(trials)
    r = search("--trials", "3", "--sampler", "random", data=tiny_data)  # same command: nothing left to do
    assert r.exit_code == 0 and "already has 3" in r.output
    assert len(load().get_trials()) == n
    r = search("--trials", "4", "--sampler", "random", data=tiny_data)  # resume and extend
    assert r.exit_code == 0, r.output
    assert outcomes(load()).count("trained") == 4
    assert [t.number for t in load().get_trials()][:n] == list(range(n))


def test_refusals_are_one_line_exit_2(workdir, tiny_data):
    assert search("--trials", "1", data=tiny_data).exit_code == 0
    other = dict(SPACE, hyperparameters={"SGE": {"groups": [4, 16]}})
    (workdir / "space2.yaml").write_text(yaml.safe_dump(other))
    cases = [
        (["--study", "space"], "space2.yaml", "10gflops", "different space"),
        (["--workers", "2"], "space.yaml", "10gflops", "journal"),
        ([], "space.yaml", "10 bananas", "10 bananas"),
        ([], "missing.yaml", "10gflops", "missing.yaml"),
        (["--storage", "postgresql://postgres@127.0.0.1:1/nope"], "space.yaml", "10gflops", "127.0.0.1:1"),
        (["--epochs", "2"], "space.yaml", "10gflops", "proxy settings"),
        (["--study", "fresh", "--data", "missing/data.yaml"], "space.yaml", "10gflops", "missing/data.yaml"),
    ]
    before = len(load().get_trials())
    for extra, space, budget, words in cases:
        r = search(*extra, data=tiny_data, space=space, budget=budget)
        assert r.exit_code == 2, (extra, r.output)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], r.stderr
    assert len(load().get_trials()) == before  # nothing stored was touched
    assert optuna.study.get_all_study_names("sqlite:///studies/nas.db") == ["space"]  # no empty study left


def test_duplicate_architecture_reuses_the_score(workdir, tiny_data):
    from nas.space import baseline, load_space, trial_params

    assert search("--trials", "1", data=tiny_data).exit_code == 0
    study = load()
    space = load_space("space.yaml")
    study.enqueue_trial(trial_params(space, baseline(space)))
    assert search("--trials", "2", data=tiny_data).exit_code == 0
    trials = load().get_trials()
    assert trials[1].user_attrs["outcome"] == "reused" and trials[1].user_attrs["reused_from"] == 0
    reused = [t for t in trials if t.user_attrs.get("outcome") == "reused"]
    for t in reused:  # the sampler may propose more twins in this small space: all reuse, none retrain
        src = trials[t.user_attrs["reused_from"]]
        assert src.user_attrs["outcome"] == "trained"
        assert t.user_attrs["model_hash"] == src.user_attrs["model_hash"]
        assert t.values[0] == src.values[0]
        assert not [m for m in optuna.artifacts.get_all_artifact_meta(t, storage=study._storage)]  # not trained again


def test_failing_candidate_is_recorded_and_search_goes_on(workdir, tiny_data, monkeypatch):
    import nas.search.objective
    import nas.train
    from nas.train.trainer import ProxyResult

    real = nas.train.train_and_evaluate

    def flaky(cfg, **kw):
        if any(row[2] == "SGE" for row in cfg["head"]):
            return ProxyResult(status="failed", reason="non-finite loss at epoch 1, batch 1 (box nan)")
        return real(cfg, **kw)

    monkeypatch.setattr(nas.search.objective, "train_and_evaluate", flaky)  # where the objective calls it
    space = dict(SPACE, width_multiple=0.25, insert=[{"after": 23, "name": "P5", "blocks": ["none", "SGE", "GE"]}])
    (workdir / "space.yaml").write_text(yaml.safe_dump(space))
    r = search("--trials", "1", data=tiny_data)
    assert r.exit_code == 0, r.output
    s = load()
    s.enqueue_trial({"P5.block": "SGE", "P5.SGE.groups": 4})
    r = search("--trials", "2", "--sampler", "random", data=tiny_data)
    assert r.exit_code == 0, r.output
    failed = [t for t in load().get_trials() if t.state == TrialState.FAIL]
    assert failed and failed[0].user_attrs["fail_reason"].startswith("non-finite loss")
    assert outcomes(load()).count("trained") == 2


def test_same_seed_same_architectures(tmp_path, monkeypatch, tiny_data):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    runs = []
    for k in range(2):
        storage = f"sqlite:///run{k}.db"
        r = search("--trials", "3", "--storage", storage, "--sampler", "tpe", data=tiny_data)
        assert r.exit_code == 0, r.output
        runs.append([t.user_attrs["choices"] | {"w": t.params.get("width_multiple")}
                     for t in load(storage).get_trials()])
    assert runs[0] == runs[1]


# ------------------------------------------------------------------------ budget gate, rungs, precision


def _warm_cost_tables(space_path: str, nc: int) -> None:
    """Build the space's cost tables (one count of the base per multiples) before a test disables the counter."""
    import itertools

    from nas.cost import cost_table
    from nas.cost.gate import nc_delta
    from nas.space import load_space

    space = load_space(space_path)
    for gd, gw in itertools.product(space.depth_multiple, space.width_multiple):
        cost_table(space, gd, gw)
        nc_delta(space, gd, gw, nc)


def test_all_over_budget_search_never_counts_a_candidate(workdir, tiny_data, monkeypatch):
    import nas.cost
    import nas.cost.gate
    from nas.budget import Budget
    from nas.cost.gate import predict
    from nas.search.data import resolve_search_data
    from nas.search.options import SearchOptions
    from nas.search.run import open_study, prepare, run_search
    from nas.space import sample

    opts = SearchOptions(space="space.yaml", budget=Budget(gflops=0.001), data=tiny_data, epochs=1, imgsz=64,
                         trials=1, sampler="random")
    space = prepare(opts)  # validating the space counts its base model once per multiples
    data = resolve_search_data(opts, space)
    study = open_study(space, opts)
    _warm_cost_tables("space.yaml", nc=2)  # the tiny data has 2 classes

    def no_count(*_a, **_kw):
        raise AssertionError("a rejected candidate was counted on the meta device")

    monkeypatch.setattr(nas.cost.gate, "count", no_count)
    summary = run_search(opts, space=space, study=study, data_spec=data)
    assert "after 50 sampled candidates" in summary.stopped_reason  # the guard for a budget almost nothing fits
    trials = load().get_trials()
    assert len(trials) == 50 and set(outcomes(load())) == {"rejected"}
    for t in trials[:5]:  # the recorded cost is the table's, at the data's classes
        params, gflops = predict(space, sample(space, optuna.trial.FixedTrial(t.params)), nc=2)
        assert t.user_attrs["params"] == params and t.user_attrs["gflops"] == round(gflops, 6)
        assert t.constraints["gflops"] == pytest.approx(gflops - 0.001) and t.values[0] == 0.0


def test_cost_table_disagreement_stops_the_search_loudly(workdir, tiny_data, monkeypatch):
    import dataclasses

    import nas.cost
    import nas.cost.gate

    _warm_cost_tables("space.yaml", nc=2)
    real = nas.cost.count
    monkeypatch.setattr(nas.cost.gate, "count",
                        lambda *a, **kw: dataclasses.replace(real(*a, **kw), params=real(*a, **kw).params + 1))
    r = search("--trials", "3", "--sampler", "random", data=tiny_data)
    assert r.exit_code == 3, r.output
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("internal error: cost table predicts") and "a bug in nas" in lines[-1]
    assert "Traceback" not in r.output
    trials = load().get_trials()
    assert len(trials) == 1  # the baseline: within budget, so counted, and the search stopped there
    assert trials[0].state == TrialState.FAIL and "cost table predicts" in trials[0].user_attrs["fail_reason"]
    assert "fitness" not in trials[0].user_attrs  # never trained


def _dominating_rung_records(study, n: int = 2) -> None:
    """Trials that reached rung 2 with the highest possible fitness at no cost: they dominate any candidate."""
    from optuna.trial import create_trial

    for _ in range(n):
        study.add_trial(create_trial(values=[1.0, 0.0], user_attrs={
            "gflops": 0.0, "params": 1, "fitness": 1.0, "rungs": {"2": 1.0}, "choices": {"P5": "none"}}))


def test_clearly_worse_candidate_stops_at_the_first_rung_and_a_resume_keeps_the_rungs(workdir, tiny_data):
    args = ("--epochs", "3", "--sampler", "random")  # 3 epochs, no audit: one rung, at epoch round(0.75 * 3) = 2
    r = search("--trials", "1", *args, data=tiny_data)
    assert r.exit_code == 0, r.output
    study = load()
    base = study.trials[0].user_attrs
    assert base["outcome"] == "trained" and list(base["rungs"]) == ["2"]  # alone at its rung: it went on
    history = read_history(study, study.trials[0], S.existing_store(None))
    assert ["fitness" in h for h in history] == [False, True, True]  # scored at the rung and the end
    _dominating_rung_records(study)

    study.enqueue_trial({"width_multiple": 0.25, "P5.block": "SGE", "P5.SGE.groups": 4})
    r = search("--trials", "2", *args, data=tiny_data)
    assert r.exit_code == 0, r.output
    t = load().get_trials()[3]
    a = t.user_attrs
    assert t.state == TrialState.COMPLETE and a["outcome"] == "stopped" and a["choices"] == {"P5": "SGE(groups=4)"}
    history = read_history(load(), t, S.existing_store(None))
    assert len(history) == 2 and a["rungs"] == {"2": pytest.approx(history[1]["fitness"], abs=1e-6)}
    stopped = a["stopped_early"]
    assert stopped["epoch"] == 2 and stopped["compared"] == 4 and stopped["kept"] == 2  # baseline, 2 records, it
    assert t.values == [pytest.approx(a["rungs"]["2"]), pytest.approx(a["gflops"])]  # the sampler learns from it

    load().enqueue_trial({"width_multiple": 0.25, "P5.block": "SGE", "P5.SGE.groups": 8})
    r = search("--trials", "3", *args, data=tiny_data)  # a resume: the stored rung records still count
    assert r.exit_code == 0, r.output
    trials = load().get_trials()
    assert trials[3].user_attrs["rungs"] == a["rungs"]
    assert trials[4].user_attrs["outcome"] == "stopped" and trials[4].user_attrs["stopped_early"]["compared"] == 5


def test_precision_reaches_the_trainer_and_belongs_to_the_proxy(workdir, tiny_data, monkeypatch):
    monkeypatch.setattr("nas.train.precision.cpu_has_native_bf16", lambda: True)  # bf16 runs (slowly) on any CPU
    import nas.search.objective
    import nas.train

    real, seen = nas.train.train_and_evaluate, []

    def spy(cfg, **kw):
        seen.append(kw)
        return real(cfg, **kw)

    monkeypatch.setattr(nas.search.objective, "train_and_evaluate", spy)
    r = search("--trials", "1", "--epochs", "2", "--precision", "bf16", "--no-early-stop", data=tiny_data)
    assert r.exit_code == 0, r.output
    assert seen[0]["precision"] == "bf16" and seen[0]["eval_epochs"] is None
    study = load()
    a = study.trials[0].user_attrs
    history = read_history(study, study.trials[0], S.existing_store(None))
    assert history and all("fitness" in h for h in history) and "rungs" not in a  # every epoch scored, no rungs
    assert study.user_attrs["proxy"]["precision"] == "bf16"

    r = search("--trials", "2", "--precision", "fp32", data=tiny_data)  # fp32 scores would not compare with bf16's
    assert r.exit_code == 2 and r.stderr.startswith("error: ") and "--precision" in r.stderr and "bf16" in r.stderr
    old = {k: v for k, v in study.user_attrs["proxy"].items() if k != "precision"}
    study.set_user_attr("proxy", old)  # a study from before --precision: it trained in fp32
    assert search("--trials", "1", "--epochs", "2", "--precision", "bf16", data=tiny_data).exit_code == 2
    r = search("--trials", "1", "--epochs", "2", "--precision", "fp32", data=tiny_data)
    assert r.exit_code == 0 and "already has 1" in r.output, r.output
    assert len(seen) == 1


def test_evaluate_trains_at_the_chosen_precision(tiny_data, monkeypatch):
    monkeypatch.setattr("nas.train.precision.cpu_has_native_bf16", lambda: True)  # the machine may lack avx512_bf16
    import json

    args = ["evaluate", "yolov5n", "--data", tiny_data, "--epochs", "1", "--imgsz", "64", "--json"]
    for precision in ("bf16", "fp32"):
        r = CliRunner().invoke(main, [*args, "--precision", precision])
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["precision"] == precision


# ------------------------------------------------------------------------------------ several processes


def nas_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "nas.cli", *args]


def _env():
    env = dict(os.environ, NAS_HEARTBEAT_INTERVAL="1", NAS_GRACE_PERIOD="4", OMP_NUM_THREADS="1",
               PYTHONUNBUFFERED="1")
    return env


def _pg_url() -> str:
    pytest.importorskip("psycopg")
    import sqlalchemy

    url = "postgresql://postgres@127.0.0.1:5432/test"  # the plain URL: psycopg 3, as Optuna and its dashboard use
    try:
        sqlalchemy.create_engine(url, connect_args={"connect_timeout": 3}).connect().close()
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not reachable ({type(e).__name__}); CI runs it")
    return url


def _run_two(cmd, cwd, env):
    procs = [subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    return outs


def _check_shared(study, n):
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(trials)))  # none lost, none numbered twice
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    trained = [t for t in trials if t.user_attrs.get("outcome") == "trained"]
    assert len(trained) == n  # --trials N means N, however many processes share the study
    assert all(t.values is not None for t in trials if t.state == TrialState.COMPLETE)
    assert len([t for t in trials if t.user_attrs.get("baseline")]) == 1


@pytest.mark.services
def test_two_processes_share_a_postgresql_study(workdir, tiny_data):
    url = _pg_url()
    name = f"nas-test-{uuid.uuid4().hex[:8]}"
    cmd = nas_cmd("search", "--space", "space.yaml", "--budget", "10gflops", "--data", tiny_data, *TINY,
                  "--trials", "4", "--storage", url, "--study", name, "--sampler", "random")
    try:
        _run_two(cmd, workdir, _env())
        _check_shared(load(url, name), 4)
    finally:
        optuna.delete_study(study_name=name, storage=url)


def test_workers_share_a_journal_file(workdir, tiny_data):
    cmd = nas_cmd("search", "--space", "space.yaml", "--budget", "10gflops", "--data", tiny_data, *TINY,
                  "--trials", "4", "--storage", "journal:studies/nas.journal", "--workers", "2",
                  "--sampler", "random")
    r = subprocess.run(cmd, cwd=workdir, env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "started 1 more worker" in r.stderr
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend("studies/nas.journal"))
    _check_shared(optuna.load_study(study_name="space", storage=storage), 4)
    log = (workdir / "studies" / "space-worker1.log").read_text()
    assert "trial" in log  # the second process did trials too


def _wait_for(predicate, timeout=240.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError("timed out waiting")


# `nas` whose second candidate to train holds (writing the file `holding`) until the test kills the run:
# the victim is fixed however busy the machine is.
HELD_NAS = """
import os, signal, sys, time
from pathlib import Path

# Ctrl-C as in a terminal: a job started in the background (nohup cmd &) inherits SIGINT ignored
signal.signal(signal.SIGINT, signal.default_int_handler)

import nas.train

real, calls = nas.train.train_and_evaluate, []


def held(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
        Path("holding").write_text(str(os.getpid()))
        while True:
            time.sleep(0.05)
    return real(*args, **kwargs)


nas.train.train_and_evaluate = held
from nas.cli import main

main(sys.argv[1:], prog_name="nas")
"""


@pytest.mark.parametrize("how", ["sigkill", "sigint"])
def test_killed_search_resumes_without_losing_trials(workdir, tiny_data, how):
    storage = "sqlite:///studies/nas.db"
    args = ["search", "--space", "space.yaml", "--budget", "10gflops", "--data", tiny_data, *TINY,
            "--sampler", "random"]
    (workdir / "held_nas.py").write_text(HELD_NAS)
    proc = subprocess.Popen([sys.executable, "held_nas.py", *args, "--trials", "50"], cwd=workdir, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_for(lambda: (workdir / "holding").exists())
    trials = load(storage).get_trials()
    running = [t for t in trials if t.state == TrialState.RUNNING]
    assert len(running) == 1 and running[0].user_attrs.get("claimed")  # held in training
    victim = running[0].number
    done_numbers = {t.number for t in trials if t.state == TrialState.COMPLETE}
    trained = len([t for t in trials if t.user_attrs.get("outcome") == "trained"])
    assert trained == 1  # the first candidate trained, the second holds
    proc.send_signal(signal.SIGKILL if how == "sigkill" else signal.SIGINT)
    out = proc.communicate(timeout=120)[0]
    if how == "sigint":
        assert proc.returncode == 130, out
        assert "interrupted" in out and "Traceback" not in out
        t = load(storage).get_trials()[victim]
        assert t.state == TrialState.FAIL and "Ctrl-C" in t.user_attrs["fail_reason"]
    else:
        assert proc.returncode == -signal.SIGKILL
        assert load(storage).get_trials()[victim].state == TrialState.RUNNING
    # at once, with a grace period far longer than the run: SQLite is one process, so a RUNNING trial is dead
    env = dict(_env(), NAS_GRACE_PERIOD="3600")
    r = subprocess.run(nas_cmd(*args, "--trials", str(trained + 1)), cwd=workdir, env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    trials = load(storage).get_trials()
    assert trials[victim].state == TrialState.FAIL
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert {t.number for t in trials if t.state == TrialState.COMPLETE} >= done_numbers  # nothing lost
    retries = [t for t in trials if t.number > victim and t.params == trials[victim].params]
    assert retries and retries[0].state == TrialState.COMPLETE  # the interrupted candidate ran again


# ------------------------------------------------------------------------------------------- pieces


def test_durations_and_worker_command():
    from dataclasses import replace

    from nas.budget import Budget
    from nas.errors import NasError
    from nas.latency.study import LatencySettings
    from nas.search.options import SearchOptions, parse_duration
    from nas.search.workers import worker_command

    assert parse_duration("2h") == 7200 and parse_duration("1h30m") == 5400 and parse_duration("90") == 90
    assert parse_duration(None) is None
    for bad in ("soon", "-5", "2x"):
        with pytest.raises(NasError, match="--timeout"):
            parse_duration(bad)
    opts = SearchOptions(space="s.yaml", budget=Budget(gflops=10.0, params=5_000_000), storage="journal:j",
                         workers=3, early_stop=False, eta=4, precision="bf16", timeout=90.0,
                         latency=LatencySettings("latency", "onnxruntime", 2))
    cmd = worker_command(opts)
    assert cmd[cmd.index("nas.cli") + 1:-1] == ["search-worker"]  # every option in one JSON argument
    got = SearchOptions.from_json(cmd[-1])
    assert got.workers == 1 and not got.early_stop and got.eta == 4 and got.precision == "bf16"
    assert got.budget == opts.budget and got.latency == opts.latency and got.timeout == 90.0
    assert replace(got, workers=3) == replace(opts, run_id=got.run_id)  # the rest as given; its own run id
    assert got.run_id != opts.run_id  # a worker is its own process: the study's creator stays the creator
    plain = worker_command(SearchOptions(space="s.yaml", budget=Budget(gflops=1.0)))
    assert SearchOptions.from_json(plain[-1]).early_stop

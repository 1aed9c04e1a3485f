"""--workers auto (the default): one process per usable core where the storage can be shared."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import optuna
import pytest
import yaml
from click.testing import CliRunner

from nas import storage as S
from nas.cli import main
from nas.data import SyntheticConfig, synthetic_dataset
from nas.errors import NasError
from nas.outcome import Outcome
from nas.record import write
from nas.search import objective as O
from nas.search import workers as W


@pytest.fixture(autouse=True)
def real_defaults(monkeypatch):
    """This file tests the defaults themselves: no storage or worker count from the environment."""
    monkeypatch.delenv("NAS_STORAGE", raising=False)
    monkeypatch.delenv("NAS_WORKERS", raising=False)


SPACE = {"base": "yolov5n", "imgsz": 640, "width_multiple": [0.25], "hyperparameters": {"SGE": {"groups": [2, 4, 8]}},
         "insert": [{"after": 23, "name": "P5", "blocks": ["none", "SGE", "GE"]}]}


def test_auto_is_one_worker_per_core_where_the_storage_is_shared(monkeypatch):
    monkeypatch.setattr(W, "usable_cores", lambda: 6)
    assert W.parse_workers("auto", None, "cpu") == 6  # the default journal file
    assert W.parse_workers(None, "journal:x.journal", "cpu") == 6
    assert W.parse_workers("auto", "postgresql://u@h/db", "cpu") == 6
    assert W.parse_workers("auto", "sqlite:///studies/nas.db", "cpu") == 1  # SQLite serves one process
    assert W.parse_workers("auto", None, "cuda") == 1  # one GPU, one process
    assert W.parse_workers(" 3 ", None, "cpu") == 3
    assert W.threads_per_worker(6) == 1 and W.threads_per_worker(2) == 3 and W.threads_per_worker(12) == 1
    with pytest.raises(NasError, match="--workers 'two' is not a number of processes; use e.g. --workers 2, or auto"):
        W.parse_workers("two", None, "cpu")


def test_usable_cores_follows_the_affinity_mask():
    assert W.usable_cores() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize(("value", "words"), [("two", "--workers 'two' is not a number"),
                                              ("0", "--workers must be at least 1, got 0")])
def test_bad_workers_is_one_error_line(tmp_path, monkeypatch, value, words):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["search", "--space", "neck", "--budget", "10gflops", "--workers", value])
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], r.stderr
    assert not (tmp_path / "studies").exists()


@pytest.mark.skipif(W.usable_cores() < 2, reason="needs 2 usable cores to show the default's second worker")
def test_the_default_search_runs_one_worker_per_core_on_the_default_journal(tmp_path):
    data = synthetic_dataset(SyntheticConfig(n_train=48, n_val=8, size=64, nc=2), cache_dir=tmp_path / "data")
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    env = {k: v for k, v in os.environ.items() if k != "NAS_WORKERS"}  # the real default
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "nas.cli", "search", "--space", "space.yaml", "--budget", "10gflops", "--data",
           str(data), "--epochs", "1", "--imgsz", "64", "--batch", "8", "--trials", "4", "--sampler", "random"]
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    cores = W.usable_cores()
    assert f"started {cores - 1} more worker" in r.stderr
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        study = S.load_study(None, "space")  # the default storage, as nas pareto reads it
        trials = study.get_trials()
    assert len([t for t in trials if t.user_attrs.get("outcome") == "trained"]) == 4
    assert len({t.user_attrs.get("pid") for t in trials}) >= 2  # more than one process ran trials
    assert (tmp_path / "studies" / "nas.journal").is_file() and not (tmp_path / "studies" / "nas.db").exists()
    assert optuna.study.StudyDirection.MAXIMIZE in study.directions
    with pytest.MonkeyPatch.context() as mp:  # the commands that read a study find it where the search put it
        mp.chdir(tmp_path)
        front = CliRunner().invoke(main, ["pareto", "--json"])
        export = CliRunner().invoke(main, ["export-best", "--out", "best.yaml"])
    assert front.exit_code == 0 and export.exit_code == 0, front.output + export.output
    assert (tmp_path / "best.yaml").is_file()


def _claim_in_thread(study, number_of_trials):
    """Run O.Objective._claim_slot for a new trial in a thread; returns (trial, thread, result list)."""
    claimant = study.ask()
    me = SimpleNamespace(opts=SimpleNamespace(trials=number_of_trials))
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(O.Objective._claim_slot(me, claimant)), daemon=True)
    thread.start()
    return claimant, thread, result


def test_claims_are_decided_in_trial_order_so_workers_never_train_past_trials(monkeypatch):
    """A lower-numbered trial that claims after a higher one looked must still count: the higher one waits."""
    monkeypatch.setattr(O, "CLAIM_POLL", 0.02)
    monkeypatch.setattr(O, "fail_dead_trials", lambda *a, **k: None)
    monkeypatch.setattr(O, "fail_stale_trials", lambda *a, **k: None)
    study = optuna.create_study(directions=["maximize", "minimize"])
    for _ in range(2):  # two candidates scored
        t = study.ask()
        write(t, claimed=True, outcome=Outcome.TRAINED)
        study.tell(t, [0.1, 1.0])
    lower = study.ask()  # another worker's trial, still sampling or pricing: it has not claimed yet
    higher, thread, result = _claim_in_thread(study, 3)
    time.sleep(0.3)
    assert thread.is_alive() and not result  # it waits for the lower trial to decide
    write(lower, claimed=True)  # the lower one claims the last slot and trains ...
    time.sleep(0.3)
    assert thread.is_alive()  # ... every slot is held now
    write(lower, outcome=Outcome.TRAINED)
    study.tell(lower, [0.2, 1.0])
    thread.join(60)  # returns as soon as it decides; generous for a busy machine
    assert result == [False]  # three scored: the higher trial does not train a fourth
    assert higher.number > lower.number


def test_a_lower_trial_that_needs_no_slot_lets_the_higher_one_train(monkeypatch):
    monkeypatch.setattr(O, "CLAIM_POLL", 0.02)
    study = optuna.create_study(directions=["maximize", "minimize"])
    lower = study.ask()
    _, thread, result = _claim_in_thread(study, 1)
    write(lower, outcome=Outcome.REJECTED)  # over the budget: finished without a claim
    study.tell(lower, [0.0, 99.0])
    thread.join(60)
    assert result == [True]

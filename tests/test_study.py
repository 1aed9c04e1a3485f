"""The study layer: storage URLs, create/resume, heartbeats, artifacts, feasibility and the Pareto front."""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import socket
import subprocess
import sys
import textwrap
import time
import uuid
import warnings
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from nas import storage as S
from nas.errors import NasError
from nas.front import pareto
from nas.record import HEARTBEAT_ATTR, model_yaml_artifact, save_model_yaml, write

optuna.logging.set_verbosity(optuna.logging.WARNING)

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
MY_URL = "mysql://root@127.0.0.1:3306/test"
ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture(autouse=True)
def real_defaults(monkeypatch):
    """This file tests the defaults themselves: no storage or worker count from the environment."""
    monkeypatch.delenv("NAS_STORAGE", raising=False)
    monkeypatch.delenv("NAS_WORKERS", raising=False)


SQLITE = "sqlite:///studies/nas.db"


def _server_or_skip(url: str) -> str:
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(S.normalize_url(url), connect_args={"connect_timeout": 2})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"database server not reachable at {S.mask_url(url)}: {type(e).__name__}")
    return url


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _unique(prefix: str = "nas-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


ATTRS = {
    "space_path": "search_spaces/neck.yaml",
    "base": "yolov5n",
    "imgsz": [256, 256],
    "budget": {"gflops": 10.0, "params": None},
    "nas_version": "0.1.0",
    "points": ["p4_c3", "p5_c3"],
}


# ------------------------------------------------------------------------------------------- URLs


def test_normalize_and_mask() -> None:
    assert S.normalize_url(None) == S.DEFAULT_STORAGE == "journal:studies/nas.journal"
    assert S.normalize_url("mysql://root@h/db") == "mysql+pymysql://root@h/db"
    assert S.normalize_url("mariadb://root@h/db") == "mysql+pymysql://root@h/db"
    assert S.normalize_url("postgresql://u@h/db") == "postgresql://u@h/db"  # the driver SQLAlchemy picks: psycopg 3
    assert S.normalize_url("postgres://u@h/db") == "postgresql://u@h/db"
    assert S.normalize_url("mysql+mysqldb://u@h/db") == "mysql+mysqldb://u@h/db"
    assert S.normalize_url("journal:studies/x.journal") == "journal:studies/x.journal"
    assert S.normalize_url("runs/x.journal") == "journal:runs/x.journal"
    assert S.normalize_url("runs/x.log") == "journal:runs/x.log"
    assert S.mask_url("postgresql://bob:s3cret@db:5432/nas").endswith("//bob:***@db:5432/nas")
    assert "s3cret" not in S.mask_url("mysql://bob:s3cret@db/nas")
    assert S.mask_url("sqlite:///a.db") == "sqlite:///a.db"
    assert not S.is_sqlite(None) and S.is_journal(None)
    assert S.is_sqlite("sqlite:////tmp/a.db") and not S.is_sqlite("journal:a.journal")
    assert S.is_journal("a.journal") and not S.is_journal(PG_URL)
    assert S.sqlite_path("sqlite:///studies/nas.db") == Path("studies/nas.db")
    assert S.sqlite_path("sqlite:////abs/nas.db") == Path("/abs/nas.db")
    assert S.sqlite_path("sqlite:///:memory:") is None
    with pytest.raises(NasError, match="not a storage URL"):
        S.normalize_url("studies/nas.db")


def test_refuse_sqlite_with_workers() -> None:
    S.refuse_sqlite_with_workers(None, 2)  # the default journal file takes several workers
    S.refuse_sqlite_with_workers(SQLITE, 1)
    S.refuse_sqlite_with_workers("journal:studies/nas.journal", 4)
    S.refuse_sqlite_with_workers(PG_URL, 4)
    with pytest.raises(NasError) as info:
        S.refuse_sqlite_with_workers(SQLITE, 2)
    msg = str(info.value)
    assert (
        "SQLite" in msg
        and "journal:studies/nas.journal" in msg
        and "postgresql://" in msg
        and "\n" not in msg
    )


# ---------------------------------------------------------------------------------------- storage


def test_sqlite_creates_folder(in_tmp: Path) -> None:
    storage = S.resolve_storage(SQLITE)
    assert isinstance(storage, optuna.storages.RDBStorage)
    assert (in_tmp / "studies" / "nas.db").is_file()
    assert storage.heartbeat_interval == S.HEARTBEAT_INTERVAL and storage.grace_period == S.GRACE_PERIOD
    assert isinstance(
        storage.heartbeat_stale_trial_callback, optuna.storages.RetryHeartbeatStaleTrialCallback
    )
    nested = S.resolve_storage("sqlite:///deep/er/x.db")
    assert isinstance(nested, optuna.storages.RDBStorage) and (in_tmp / "deep" / "er" / "x.db").is_file()


def test_journal_storage(in_tmp: Path) -> None:
    storage = S.resolve_storage("journal:runs/a/nas.journal")
    assert isinstance(storage, optuna.storages.JournalStorage)
    assert (in_tmp / "runs" / "a" / "nas.journal").is_file()
    assert isinstance(S.resolve_storage("other.log"), optuna.storages.JournalStorage)


def test_missing_files_with_create_false_leave_nothing(in_tmp: Path) -> None:
    with pytest.raises(NasError, match="no study journal at studies/nas.journal .the default storage.; run `nas "
                                       "search` first or pass --storage URL$"):
        S.resolve_storage(None, create=False)
    with pytest.raises(NasError, match="no journal file"):
        S.resolve_storage("journal:x/y.journal", create=False)
    with pytest.raises(NasError, match="no study journal"):
        S.load_study(None)
    assert list(in_tmp.iterdir()) == []


def test_bad_files_leave_nothing(in_tmp: Path) -> None:
    (in_tmp / "junk.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(NasError, match="cannot open storage sqlite:///junk.db.*not an SQLite database"):
        S.resolve_storage("sqlite:///junk.db")
    (in_tmp / "junk.journal").write_text("not json\n")
    with pytest.raises(NasError, match="cannot open journal storage.*not an Optuna journal"):
        S.resolve_storage("junk.journal")
    assert sorted(p.name for p in in_tmp.iterdir()) == ["junk.db", "junk.journal"]
    with pytest.raises(NasError, match="is a folder"):
        S.resolve_storage(f"sqlite:///{in_tmp}")


@pytest.mark.parametrize(
    "url, fix",
    [
        ("postgresql://postgres:hunter2@127.0.0.1:1/x", "running and reachable"),
        ("mysql://root:hunter2@127.0.0.1:1/x", "running and reachable"),
        ("nosuchdialect://a/b", "accepted forms"),
    ],
)
def test_unreachable_database_fails_fast(in_tmp: Path, url: str, fix: str) -> None:
    start = time.monotonic()
    with pytest.raises(NasError) as info:
        S.resolve_storage(url)
    assert time.monotonic() - start < 3.0
    msg = str(info.value)
    assert "\n" not in msg and fix in msg and "hunter2" not in msg
    assert "cannot open storage" in msg
    assert list(in_tmp.iterdir()) == []


def test_missing_server_database_names_the_fix() -> None:
    _server_or_skip(PG_URL)
    with pytest.raises(NasError, match="CREATE DATABASE nas_missing_db"):
        S.resolve_storage("postgresql://postgres@127.0.0.1:5432/nas_missing_db")


@pytest.mark.services
@pytest.mark.parametrize("url", [PG_URL, MY_URL])
def test_server_storage_create_resume_delete(url: str) -> None:
    _server_or_skip(url)
    storage = S.resolve_storage(url)
    assert isinstance(storage, optuna.storages.RDBStorage)
    assert storage.heartbeat_interval == S.HEARTBEAT_INTERVAL
    name = _unique()
    try:
        study = S.create_or_resume(storage, name, space_hash="abc", attrs=ATTRS, sampler=None)
        study.add_trial(create_trial(values=[0.5, 3.0], user_attrs={"model_yaml": "x" * 5000}))
        again = S.create_or_resume(url, name, space_hash="abc", attrs=ATTRS, sampler=None)
        assert again.user_attrs["space_hash"] == "abc" and len(again.trials) == 1
        assert again.trials[0].user_attrs["model_yaml"] == "x" * 5000
        assert name in S.study_names(url)
        assert S.load_study(url, name).study_name == name
    finally:
        optuna.delete_study(study_name=name, storage=storage)


# ---------------------------------------------------------------------------------------- studies


def test_create_sets_contract_attrs(in_tmp: Path) -> None:
    study = S.create_or_resume(None, "neck", space_hash="h1", attrs=ATTRS, sampler=None)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["fitness", "GFLOPs"]
    assert study.user_attrs == {**ATTRS, "space_hash": "h1"}
    study.add_trial(create_trial(values=[0.1, 2.0]))
    resumed = S.create_or_resume(
        None, "neck", space_hash="h1", attrs={**ATTRS, "base": "ignored"}, sampler=None
    )
    assert resumed.user_attrs["base"] == "yolov5n"  # resuming never rewrites the record
    assert len(resumed.trials) == 1


def test_resume_with_another_space_is_refused(in_tmp: Path) -> None:
    S.create_or_resume(None, "neck", space_hash="aaaaaaaaaaaaaaaa", attrs=ATTRS, sampler=None)
    with pytest.raises(NasError) as info:
        S.create_or_resume(None, "neck", space_hash="bbbbbbbbbbbbbbbb", attrs=ATTRS, sampler=None)
    msg = str(info.value)
    assert "'neck'" in msg and "aaaaaaaaaaaa" in msg and "bbbbbbbbbbbb" in msg and "--study neck-2" in msg
    assert "search_spaces/neck.yaml" in msg


def test_resume_foreign_study_is_refused_or_adopted(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(S.open, "CREATE_RACE_WAIT", 0.2)
    storage = S.resolve_storage(None)
    optuna.create_study(storage=storage, study_name="single", direction="minimize")
    with pytest.raises(NasError, match="not a nas study"):
        S.create_or_resume(storage, "single", space_hash="h", attrs=ATTRS, sampler=None)
    optuna.create_study(storage=storage, study_name="bare", directions=["maximize", "minimize"])
    adopted = S.create_or_resume(storage, "bare", space_hash="h", attrs=ATTRS, sampler=None)
    assert adopted.user_attrs["space_hash"] == "h" and adopted.metric_names == ["fitness", "GFLOPs"]


def test_an_earlier_default_sqlite_file_is_named_when_the_journal_is_missing(in_tmp: Path) -> None:
    S.resolve_storage(SQLITE)  # the default before one worker per core
    with pytest.raises(NasError, match="studies/nas.db holds studies of nas before the journal became the default: "
                                       "pass --storage sqlite:///studies/nas.db$"):
        S.resolve_storage(None, create=False)


def test_load_study_cases(in_tmp: Path) -> None:
    storage = S.resolve_storage(None)
    with pytest.raises(NasError, match="no studies in journal:studies/nas.journal"):
        S.load_study(None)
    S.create_or_resume(storage, "alpha", space_hash="h", attrs=ATTRS, sampler=None)
    assert S.load_study(None).study_name == "alpha"
    S.create_or_resume(storage, "beta", space_hash="h", attrs=ATTRS, sampler=None)
    with pytest.raises(NasError, match=r"holds 2 studies \(alpha, beta\); choose one with --study NAME"):
        S.load_study(None)
    with pytest.raises(
        NasError, match=r"no study 'gamma' in journal:studies/nas.journal; existing: alpha, beta"
    ):
        S.load_study(None, "gamma")
    assert S.load_study("journal:studies/nas.journal", "beta").study_name == "beta"


# ------------------------------------------------------------------------------------- heartbeats


def test_journal_heartbeat_and_stale_sweep(in_tmp: Path) -> None:
    url = "journal:studies/nas.journal"
    study = S.create_or_resume(url, "j", space_hash="h", attrs=ATTRS, sampler=None)
    trial = study.ask()
    trial.suggest_int("x", 0, 10)
    with S.trial_heartbeat(trial, interval=0.05):
        time.sleep(0.2)
        beat = study.trials[0].system_attrs[HEARTBEAT_ATTR]
        assert time.time() - beat < 1.0
    assert S.fail_stale_trials(study) == []  # fresh heartbeat: alive
    never_beating = study.ask()  # a RUNNING trial with no heartbeat is left alone
    storage = S.resolve_storage(url)
    storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_ATTR, time.time() - 10 * S.GRACE_PERIOD)
    other = optuna.load_study(study_name="j", storage=storage)
    assert S.fail_stale_trials(other) == [0]
    states = {t.number: t.state for t in study.get_trials()}
    assert states[0] == TrialState.FAIL and states[never_beating.number] == TrialState.RUNNING
    retry = [t for t in study.get_trials() if t.state == TrialState.WAITING]
    assert len(retry) == 1 and retry[0].params == {"x": trial.params["x"]}
    assert retry[0].system_attrs["failed_trial"] == 0


def test_rdb_stale_trial_failed_and_retried(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(S.heartbeat, "HEARTBEAT_INTERVAL", 1)
    monkeypatch.setattr(S.heartbeat, "GRACE_PERIOD", 1)
    study = S.create_or_resume(SQLITE, "r", space_hash="h", attrs=ATTRS, sampler=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trial = study.ask()
    with S.trial_heartbeat(trial, interval=0.1):  # ask/tell loop: nas beats for optuna's RDB heartbeat
        time.sleep(0.3)
    time.sleep(2.2)
    assert S.fail_stale_trials(study) == [0]
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.WAITING]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_dead_trials_of_this_machine_are_failed_and_requeued_at_once(in_tmp: Path) -> None:
    url = "journal:studies/nas.journal"
    study = S.create_or_resume(url, "d", space_hash="h", attrs=ATTRS, sampler=None)
    here = socket.gethostname()
    owners = [(here, _dead_pid()), (here, os.getpid()), ("elsewhere", _dead_pid()), (None, None)]
    for host, pid in owners:
        trial = study.ask()
        trial.suggest_int("x", 0, 10)
        if host is not None:
            write(trial, host=host, pid=pid)
    again = S.create_or_resume(url, "d", space_hash="h", attrs=ATTRS, sampler=None)  # a rerun, at once
    states = [t.state for t in again.get_trials()]
    # only the dead process of this machine: its own process, other machines and unrecorded ones are alive
    assert states == [TrialState.FAIL, TrialState.RUNNING, TrialState.RUNNING, TrialState.RUNNING,
                      TrialState.WAITING]
    assert again.get_trials()[4].params == again.get_trials()[0].params


def test_sqlite_running_trials_are_dead_at_start(in_tmp: Path) -> None:
    study = S.create_or_resume(SQLITE, "s", space_hash="h", attrs=ATTRS, sampler=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trial = study.ask()  # left RUNNING by a process that is gone (SQLite serves one process)
    trial.suggest_int("x", 0, 10)
    again = S.create_or_resume(SQLITE, "s", space_hash="h", attrs=ATTRS, sampler=None)
    assert [t.state for t in again.get_trials()] == [TrialState.FAIL, TrialState.WAITING]


@pytest.mark.services
def test_plain_postgresql_url_reads_a_nas_study_in_optuna_too() -> None:
    """The URL nas prints is the one Optuna and optuna-dashboard open: both use psycopg 3 for postgresql://."""
    pytest.importorskip("psycopg")
    name = f"nas-test-{uuid.uuid4().hex[:8]}"
    try:
        S.create_or_resume(PG_URL, name, space_hash="h", attrs=ATTRS, sampler=None)
    except NasError as e:
        pytest.skip(f"PostgreSQL is not reachable: {e}")
    try:
        study = optuna.load_study(study_name=name, storage=PG_URL)  # no nas in between
        assert study.user_attrs["space_hash"] == "h"
    finally:
        optuna.delete_study(study_name=name, storage=PG_URL)


# ------------------------------------------------------------------------------------ concurrency

WORKER = textwrap.dedent(
    """
    import sys, optuna
    from nas import storage as S
    from nas.front import pareto
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    attrs = {"base": "yolov5n", "imgsz": [256, 256], "budget": {"gflops": None, "params": None}}
    sampler = optuna.samplers.RandomSampler()
    study = S.create_or_resume(url, name, space_hash="h", attrs=attrs, sampler=sampler)
    def objective(trial):
        with S.trial_heartbeat(trial):
            x = trial.suggest_float("x", 0, 1)
            trial.set_user_attr("pid", __import__("os").getpid())
            trial.set_constraint("gflops", x - 0.5)
            return x, x * x
    study.optimize(objective, n_trials=n)
    """
)


def _run_two_workers(url: str, name: str, n: int, cwd: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, name, str(n)], cwd=cwd, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err


@pytest.mark.services
@pytest.mark.parametrize("kind", ["journal", "postgresql", "mysql"])
def test_two_processes_lose_no_trial(kind: str, in_tmp: Path) -> None:
    url = {"journal": "journal:studies/nas.journal", "postgresql": PG_URL, "mysql": MY_URL}[kind]
    if kind != "journal":
        _server_or_skip(url)
    name = _unique()
    try:
        _run_two_workers(url, name, 8, in_tmp)
        study = S.load_study(url, name)
        trials = study.get_trials()
        assert len(trials) == 16 and all(t.state == TrialState.COMPLETE for t in trials)
        assert sorted(t.number for t in trials) == list(range(16))
        assert len({t.user_attrs["pid"] for t in trials}) == 2
        assert study.user_attrs["space_hash"] == "h"
    finally:
        if kind != "journal":
            with contextlib.suppress(KeyError):  # a failed worker may not have created the study
                optuna.delete_study(study_name=name, storage=S.resolve_storage(url))


OPEN_AT_ONCE = """
import sys, time
from nas import storage as S
url, name, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
time.sleep(max(0.0, start - time.time()))  # every process opens at the same moment
study = S.create_or_resume(url, name, space_hash="h", attrs={"base": "yolov5n", "points": ["P3"]})
print(study.user_attrs["space_hash"], study.user_attrs["base"])
"""


def _database(kind: str, action: str, db: str) -> None:
    import sqlalchemy

    admin = {"postgresql": "postgresql://postgres@127.0.0.1:5432/postgres", "mysql": "mysql://root@127.0.0.1:3306/test"}
    engine = sqlalchemy.create_engine(S.normalize_url(admin[kind]), isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        force = " WITH (FORCE)" if action == "DROP" and kind == "postgresql" else ""  # our own pooled connection
        c.execute(sqlalchemy.text(f"{action} DATABASE {db}{force}"))
    engine.dispose()


@pytest.mark.services
@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_many_processes_open_one_new_server_study_at_once(kind: str, in_tmp: Path) -> None:
    """Six processes open the same new study in a brand-new database at the same instant, four times over: they
    race to create Optuna's tables and the study, and every one must open it (no `duplicate key` / `already
    exists` error), with one study and its attributes."""
    _server_or_skip({"postgresql": PG_URL, "mysql": MY_URL}[kind])
    script = in_tmp / "open_at_once.py"
    script.write_text(OPEN_AT_ONCE)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for _ in range(4):
        db = f"nas_race_{uuid.uuid4().hex[:8]}"
        url = {"postgresql": f"postgresql://postgres@127.0.0.1:5432/{db}", "mysql": f"mysql://root@127.0.0.1:3306/{db}"}[kind]
        _database(kind, "CREATE", db)
        try:
            start = time.time() + 4.0  # time for all six to import nas and optuna first
            procs = [subprocess.Popen([sys.executable, str(script), url, "s", str(start)], env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(6)]
            outs = [p.communicate(timeout=120) for p in procs]
            assert [p.returncode for p in procs] == [0] * 6, [err[-500:] for _, err in outs]
            assert all(out.split() == ["h", "yolov5n"] for out, _ in outs)
            assert S.study_names(url) == ["s"]
        finally:
            _database(kind, "DROP", db)


# ----------------------------------------------------------------------------------------- artifacts


def test_artifact_store_locations(in_tmp: Path) -> None:
    assert S.artifact_dir(None) == Path("studies/nas-artifacts")
    assert S.artifact_dir("journal:runs/x.journal") == Path("runs/x-artifacts")
    assert S.artifact_dir("sqlite:////data/s/a.db") == Path("/data/s/a-artifacts")
    assert S.artifact_dir(PG_URL) == Path("studies/artifacts")
    store = S.artifact_store(None)
    assert isinstance(store, optuna.artifacts.FileSystemArtifactStore)
    assert (in_tmp / "studies" / "nas-artifacts").is_dir()


def test_model_yaml_artifact_round_trip(in_tmp: Path) -> None:
    study = S.create_or_resume(None, "a", space_hash="h", attrs=ATTRS, sampler=None)
    store = S.artifact_store(None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna: heartbeat storages prefer optimize() to ask()
        trial = study.ask()
        second = study.ask()
    text = "# yolov5n\nnc: 80\nbackbone: []\n"
    save_model_yaml(study, trial, text, store)  # artifacts attach to running trials only
    study.tell(trial, [0.1, 1.0])
    frozen = study.trials[0]
    assert model_yaml_artifact(study, frozen, store) == text
    assert model_yaml_artifact(study, 0, store) == text
    assert model_yaml_artifact(study, 1, store) is None
    save_model_yaml(study, 1, "second\n", store)  # by number, still running
    study.tell(second, [0.2, 2.0])
    assert model_yaml_artifact(study, study.trials[1], store) == "second\n"
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        save_model_yaml(study, 1, "late\n", store)
    metas = optuna.artifacts.get_all_artifact_meta(study.trials[1], storage=S.resolve_storage(None))
    assert [m.filename for m in metas] == ["model-trial1.yaml"]
    with pytest.raises(NasError, match="no trial 7"):
        model_yaml_artifact(study, 7, store)


# ------------------------------------------------------------------------------------ Pareto front


def _brute_front(trials: list[optuna.trial.FrozenTrial]) -> set[int]:
    feasible = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE
        and not t.user_attrs.get("over_budget")
        and all(v <= 0 for v in t.constraints.values())
    ]
    front = set()
    for t in feasible:
        dominated = False
        for u in feasible:
            better_or_equal = u.values[0] >= t.values[0] and u.values[1] <= t.values[1]
            strictly = u.values[0] > t.values[0] or u.values[1] < t.values[1]
            if better_or_equal and strictly:
                dominated = True
        if not dominated:
            front.add(t.number)
    return front


def _random_study(rng: random.Random, n: int) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"])
    for _ in range(n):
        kind = rng.random()
        fitness = rng.choice([0.1, 0.2, 0.3, 0.4]) if rng.random() < 0.3 else rng.random()
        gflops = rng.choice([1.0, 2.0, 3.0]) if rng.random() < 0.3 else rng.uniform(0.5, 12.0)
        budget = 8.0
        if kind < 0.1:
            study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"fail_reason": "x"}))
        elif kind < 0.15:
            study.add_trial(create_trial(state=TrialState.RUNNING))
        elif kind < 0.2:  # over budget marked only by the attr
            study.add_trial(create_trial(values=[0.0, gflops], user_attrs={"over_budget": True}))
        else:
            constraints = {"gflops": gflops - budget}
            if rng.random() < 0.3:
                constraints["params"] = rng.uniform(-1e6, 2e5)
            study.add_trial(create_trial(values=[fitness, gflops], constraints=constraints))
    return study


def test_is_feasible_reads_optuna_constraints() -> None:
    ok = create_trial(values=[0.3, 5.0], constraints={"gflops": -1.0, "params": 0.0})
    assert pareto.is_feasible(ok)
    assert not pareto.is_feasible(create_trial(values=[0.3, 5.0], constraints={"gflops": 0.5}))
    assert not pareto.is_feasible(create_trial(values=[0.3, 5.0], user_attrs={"over_budget": True}))
    assert not pareto.is_feasible(create_trial(state=TrialState.FAIL))
    assert pareto.is_feasible(create_trial(values=[0.3, 5.0]))  # no budget: no constraints
    legacy = create_trial(values=[0.3, 5.0], system_attrs={"constraints": [0.2]})  # constraints_func format
    assert not pareto.is_feasible(legacy)
    # the same thing optuna's own constrained samplers and best_trials read
    study = optuna.create_study(directions=["maximize", "minimize"])
    for t in (ok, legacy, create_trial(values=[0.1, 1.0], constraints={"gflops": 3.0})):
        study.add_trial(t)
    assert [t.number for t in study.best_trials] == [t.number for t in pareto.pareto_front(study)] == [0]


@pytest.mark.parametrize("seed", range(12))
def test_pareto_front_matches_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    study = _random_study(rng, rng.choice([0, 1, 5, 40, 120]))
    front = pareto.pareto_front(study)
    assert {t.number for t in front} == _brute_front(study.trials)
    keys = [(t.values[1], -t.values[0], t.number) for t in front]
    assert keys == sorted(keys)
    assert all(pareto.is_feasible(t) for t in front)
    # the front is the same whatever order the trials come in
    shuffled = list(study.trials)
    rng.shuffle(shuffled)
    assert [t.number for t in pareto.pareto_front(shuffled)] == [t.number for t in front]
    # along the front GFLOPs rise and fitness rises (ties kept)
    for a, b in itertools.pairwise(front):
        assert a.values[1] <= b.values[1] and a.values[0] <= b.values[0]


def test_pareto_front_keeps_exact_ties() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    for values in ([0.5, 2.0], [0.5, 2.0], [0.4, 2.0], [0.6, 3.0]):
        study.add_trial(create_trial(values=values))
    assert [t.number for t in pareto.pareto_front(study)] == [0, 1, 3]


def test_nas_storage_in_the_environment_names_the_default(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAS_STORAGE", "runs/team.journal")
    assert S.normalize_url(None) == "journal:runs/team.journal" and S.is_journal(None)
    assert S.normalize_url("sqlite:///x.db") == "sqlite:///x.db"  # --storage still wins
    monkeypatch.setenv("NAS_STORAGE", "studies/nas.db")
    with pytest.raises(NasError, match=r"^NAS_STORAGE='studies/nas.db' \(the environment's default storage\): "
                                       "--storage 'studies/nas.db' is not a storage URL"):
        S.normalize_url(None)

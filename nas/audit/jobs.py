"""Audit jobs: one training run each, kept as trials of an auxiliary Optuna study beside the searched one.

The auxiliary study `<study>.audit` lives in the same storage. Missing jobs are enqueued as WAITING trials
carrying their description (the job trials' records are nas.record.audit's); workers claim them with
`study.ask()` (which pops a WAITING trial atomically, so several processes on a server or journal storage share
the queue) and `tell` the result. A finished job is never redone; a job whose process died is failed and queued again.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from nas.record import (
    enqueue_job,
    failed_for_good,
    interrupt_job,
    job_key,
    job_model_yaml,
    job_of,
    job_run,
    skip_job,
    write_job_run,
)
from nas.storage import fail_stale_trials, is_sqlite, resolve_storage, trial_heartbeat
from nas.train import train_and_evaluate
from nas.weights.base import Initializer, finetune_hyp

AUX_SUFFIX = ".audit"


@dataclass(frozen=True)
class Job:
    """One training run: a candidate at a schedule (proxy or reference) and a seed."""

    candidate: str
    kind: str  # "proxy" | "reference"
    epochs: int
    seed: int

    @property
    def key(self) -> str:
        return f"{self.candidate}|{self.kind}|e{self.epochs}|s{self.seed}"

    def describe(self) -> str:
        return f"{self.candidate} {self.kind} {self.epochs} epochs seed {self.seed}"


def plan_jobs(cands: list, proxy_epochs: int, reference_epochs: int, seed: int, seeds: int) -> list[Job]:
    """Jobs in the order that makes partial results useful soonest.

    Seed-0 proxies the study lacks (models, trials stopped early), then every reference, then one more
    proxy seed for every candidate, and so on.
    """
    jobs = [Job(c.key, "proxy", proxy_epochs, seed) for c in cands if c.run0 is None]
    jobs += [Job(c.key, "reference", reference_epochs, seed) for c in cands]
    for s in range(seed + 1, seed + seeds + 1):
        jobs += [Job(c.key, "proxy", proxy_epochs, s) for c in cands]
    return jobs


def round_history(history: list[dict]) -> list[dict]:
    """Per-epoch records with floats rounded to 6 digits (they are stored as JSON)."""
    return [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()} for r in history]


def train_job(model_yaml: str, data, *, epochs: int, imgsz: int, batch: int, seed: int, device: str = "cpu",
              epoch_end: Callable[[dict], None] | None = None,
              batch_end: Callable[[int, int, int], None] | None = None, **extra: Any) -> dict:
    """Train one model at one schedule; the run as a plain dict (fitness = best epoch, `last`, history, times).

    `extra` goes to the trainer as is (precision=, init=).
    """
    cfg = yaml.safe_load(model_yaml)
    cpu0, wall0 = time.process_time(), time.perf_counter()

    def on_epoch(record: dict) -> bool:
        if epoch_end is not None:
            epoch_end(record)
        return True

    r = train_and_evaluate(cfg, data=data, epochs=epochs, imgsz=imgsz, batch=batch, seed=seed, device=device,
                           callback=on_epoch, batch_callback=batch_end, **extra)
    history = round_history(r.history)
    return {"status": r.status, "reason": r.reason, "fitness": round(float(r.fitness), 6),
            "mAP50": round(float(r.mAP50), 6), "mAP50-95": round(float(r.mAP50_95), 6),
            "last": history[-1]["fitness"] if history else 0.0, "best_epoch": r.best_epoch,
            "history": history, "epochs": r.epochs, "seed": seed, "params": r.params,
            "wall_time": round(time.perf_counter() - wall0, 3), "cpu_time": round(time.process_time() - cpu0, 3)}


# ------------------------------------------------------------------------------------- the aux study


def aux_name(study_name: str) -> str:
    return f"{study_name}{AUX_SUFFIX}"


def open_aux(storage_url: str | None, study_name: str):
    """Create or load `<study>.audit` in the same storage (single objective: the job's fitness)."""
    storage = resolve_storage(storage_url)
    return optuna.create_study(storage=storage, study_name=aux_name(study_name), direction="maximize",
                               sampler=optuna.samplers.RandomSampler(seed=0), load_if_exists=True)


def recover_dead(aux, storage_url: str | None) -> list[int]:
    """Fail jobs left RUNNING by a dead process; returns their numbers (they are re-enqueued as missing).

    SQLite serves one process, so every RUNNING job at start is dead; other storages use the heartbeat.
    """
    if not is_sqlite(storage_url):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fail_stale_trials(aux)
    dead = [t.number for t in aux.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
    for number in dead:
        aux.tell(number, state=TrialState.FAIL)
    return dead


def job_states(aux) -> dict[str, str]:
    """Job key -> its most advanced state: COMPLETE, RUNNING, WAITING, FAILED (the candidate failed) or absent."""
    rank = {"COMPLETE": 4, "FAILED": 3, "RUNNING": 2, "WAITING": 1}
    out: dict[str, str] = {}
    for t in aux.get_trials(deepcopy=False):
        key = job_key(t)
        if key is None:
            continue
        if t.state == TrialState.FAIL:
            state = "FAILED" if failed_for_good(t) else None
        elif t.state in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING):
            state = t.state.name
        else:
            state = None
        if state and rank[state] > rank.get(out.get(key, ""), 0):
            out[key] = state
    return out


def enqueue_missing(aux, jobs: list[Job], model_yaml: dict[str, str], labels: dict[str, str]) -> int:
    """Enqueue the jobs not complete, running, waiting or failed for good; returns how many."""
    states = job_states(aux)
    n = 0
    for job in jobs:
        if job.key in states:
            continue
        enqueue_job(aux, {"job": job.key, "candidate": job.candidate, "label": labels[job.candidate],
                          "kind": job.kind, "epochs": job.epochs, "seed": job.seed}, model_yaml[job.candidate])
        n += 1
    return n


def completed_runs(aux) -> dict[str, dict]:
    """Job key -> the run of its first complete trial."""
    out: dict[str, dict] = {}
    for t in sorted(aux.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number):
        key, run = job_key(t), job_run(t)
        if key and key not in out and run is not None:
            out[key] = run
    return out


def _waiting(aux) -> int:
    return len(aux.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


@dataclass
class WorkerHooks:
    """Callbacks a display can hook into; all optional."""

    job_start: Callable[[dict], None] | None = None  # the job's user attrs
    epoch_end: Callable[[dict, dict], None] | None = None  # job attrs, epoch record
    batch_end: Callable[[int, int, int], None] | None = None
    job_end: Callable[[dict, dict], None] | None = None  # job attrs, run


def work(aux, data, *, imgsz: int, batch: int, device: str, wanted: set[str], max_jobs: int | None = None,
         hooks: WorkerHooks | None = None, precision: str = "fp32", base: Any = None) -> int:
    """Claim and run waiting jobs until none is left (or max_jobs ran); returns the number run here.

    Jobs outside `wanted` (queued by an earlier audit with other options) are left waiting. Proxy repeats train
    at `precision` (the study's, so they repeat what the search ran); references always train in fp32, the
    truth the proxy is held against. With `base` (nas.weights.base.Base) every run, reference too, fine-tunes
    from that checkpoint, transferred by aligning the job's model YAML with the checkpoint's.
    """
    hooks = hooks or WorkerHooks()
    done = 0
    while (max_jobs is None or done < max_jobs) and _waiting(aux):
        states = job_states(aux)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "heartbeat is meant for optimize": we beat ourselves
            trial = aux.ask()
        attrs = job_of(trial)
        key = attrs.get("job")
        if key is None:  # another worker took the last waiting job between the check and ask()
            aux.tell(trial, state=TrialState.PRUNED)
            break
        if key not in wanted or states.get(key) == "COMPLETE":  # an older audit's job, or a duplicate
            skip_job(trial, "not part of this audit" if key not in wanted else "duplicate")
            aux.tell(trial, state=TrialState.PRUNED)  # a later audit that wants it enqueues it again
            continue
        if hooks.job_start:
            hooks.job_start(attrs)
        try:
            with trial_heartbeat(trial):
                run = train_job(job_model_yaml(aux, attrs), data, epochs=int(attrs["epochs"]), imgsz=imgsz, batch=batch,
                                seed=int(attrs["seed"]), device=device,
                                precision=precision if attrs.get("kind") == "proxy" else "fp32",
                                **({} if base is None else {"init": Initializer(base), "hyp": finetune_hyp(base)}),
                                epoch_end=_bind(hooks.epoch_end, attrs),
                                batch_end=hooks.batch_end)
        except KeyboardInterrupt:
            interrupt_job(trial)
            aux.tell(trial, state=TrialState.FAIL)
            raise
        except BaseException:
            aux.tell(trial, state=TrialState.FAIL)  # no fail_reason: queued again on the next start
            raise
        run.pop("seed", None)
        failed = run["status"] == "failed" or not math.isfinite(run["fitness"])
        write_job_run(trial, run, fail_reason=(run["reason"] or "non-finite fitness") if failed else None)
        if failed:
            aux.tell(trial, state=TrialState.FAIL)
        else:
            aux.tell(trial, run["fitness"])
        done += 1
        if hooks.job_end:
            hooks.job_end(attrs, run)
    return done


def _bind(fn: Callable[[dict, dict], None] | None, job: dict) -> Callable[[dict], None] | None:
    """fn(job, record) as a one-argument epoch callback (None stays None)."""
    return None if fn is None else (lambda record: fn(job, record))

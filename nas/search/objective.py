"""The search objective: one call = one candidate, sample -> budget gate -> render -> (dedup) -> proxy training
with rungs -> record.

The gate (nas.cost.gate) prices a candidate from the space's cost table: candidates over the budget are completed
as infeasible (with the size of the violation as a constraint) without being built; the others are rendered and
counted on the meta device, and a count that disagrees with the table stops the search (CostMismatch, a bug).
Candidates whose rendered model was already scored reuse that score; the rest are trained by the proxy trainer,
evaluated at the successive-halving rungs (nas.search.rungs) and the last epoch, and stopped at a rung where they
rank outside the top 1/eta. Objectives: maximise fitness, minimise the cost axis (`--objective`: GFLOPs, or the
latency the study's latency table predicts; nas.latency.study). Every trained candidate with a table is also
measured for real.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from nas.cost.gate import CostMismatch, gate
from nas.errors import NasError
from nas.latency.study import cost_of, latency_attr, measure_candidate
from nas.record import (
    INTERRUPTED,
    MODEL_YAML_ARTIFACT,
    CandidateFailed,
    Outcome,
    describe,
    read,
    set_constraints,
    write,
    write_history,
    write_model_yaml,
)
from nas.search.options import Header, Progress, SearchOptions
from nas.search.rungs import SuccessiveHalving
from nas.space import model_hash, render_with_map, sample, to_yaml
from nas.storage import fail_dead_trials, fail_stale_trials, trial_heartbeat
from nas.train import train_and_evaluate
from nas.weights.base import Initializer, finetune_hyp, transfer_attr

CLAIM_POLL = 0.25  # seconds between looks at the storage while a claim waits


class Objective:
    """One call = one candidate: sample, gate on the budget, render, dedup, train with rungs, record."""

    def __init__(self, space, opts: SearchOptions, data_spec, store, progress: Progress | None = None,
                 rungs: list[int] | None = None, table=None, header: Header | None = None):
        self.space = space
        self.opts = opts
        self.data_spec = data_spec
        self.store = store
        self.progress = progress or Progress()
        # candidates are priced, rendered, counted and exported with the classes they are trained on
        self.nc = space.nc or (data_spec.nc if data_spec is not None else None)
        self.rungs = list(rungs or []) if opts.early_stop else []  # successive-halving rung epochs
        self.table = table  # the study's LatencyTable (nas.latency.study), None without one
        self.header = header  # heads each model YAML artifact (nas.export.header, handed in by the command)

    def __call__(self, trial) -> tuple[float, float]:
        write(trial, host=socket.gethostname(), pid=os.getpid())  # a later run fails it at once if we die
        try:
            with trial_heartbeat(trial):
                return self._run(trial)
        except KeyboardInterrupt:
            _safe(lambda: write(trial, fail_reason=INTERRUPTED))
            raise
        except (NasError, CostMismatch) as e:  # a CostMismatch is a bug: it stops the search (not caught)
            reason = str(e)
            _safe(lambda: write(trial, fail_reason=reason))
            raise

    def _run(self, trial) -> tuple[float, float]:
        space, opts = self.space, self.opts
        arch = sample(space, trial)
        verdict = gate(space, arch, opts.budget, nc=self.nc, table=self.table)  # built and counted only if it fits
        gflops, params, latency = verdict.gflops, verdict.params, verdict.latency_ms
        cost = cost_of(opts.latency.objective, gflops, latency)
        short = arch.short()
        is_baseline = read(trial).baseline  # set when enqueued first
        line = describe(arch, [p.name for p in space.points])
        write(trial, choices=short, candidate=line, arch=arch.to_dict(), gflops=round(gflops, 6), params=params,
              seed=opts.seed, baseline=is_baseline)
        if latency is not None:
            write(trial, latency_ms=round(latency, 4))
        set_constraints(trial, opts.budget.violations(gflops, params, latency))  # samplers and dashboard read them
        if self.progress.trial_start:
            self.progress.trial_start(trial.number, line, gflops, latency)

        if verdict.over_budget:
            write(trial, over_budget=True)
            self._end(trial, Outcome.REJECTED)
            return 0.0, cost

        cfg = verdict.cfg
        mhash = model_hash(cfg)
        write(trial, model_hash=mhash)
        twin = self._scored_twin(trial.study, mhash, trial.number)
        if twin is not None:
            write(trial, **{k: getattr(twin, k) for k in ("fitness", "mAP50", "mAP50_95", "wall_time",
                                                          "measured_latency") if getattr(twin, k) not in (None, [])},
                  reused_from=twin.number)
            self._end(trial, Outcome.REUSED)
            return float(twin.fitness), cost

        if not self._claim_slot(trial):
            trial.study.stop()
            raise _no_slot(f"--trials {opts.trials}: other workers trained the last candidates")
        text = to_yaml(cfg)
        stopper = self.stop_rule(trial, gflops)

        def on_epoch(record: dict) -> bool:
            if self.progress.epoch_end:
                self.progress.epoch_end(trial.number, record)
            if stopper is not None and stopper.should_stop(record):
                stopped = getattr(stopper, "stopped", None) or {"epoch": record["epoch"], "reason": stopper.reason}
                write(trial, stopped_early=stopped)
                return False
            return True

        init = self._initializer(arch, mhash)
        result = train_and_evaluate(cfg, data=self.data_spec, epochs=opts.epochs, imgsz=opts.imgsz,
                                    batch=opts.batch, seed=opts.seed, device=opts.device, callback=on_epoch,
                                    batch_callback=self.progress.batch_end, precision=opts.precision,
                                    eval_epochs=self.eval_epochs(), too_big="fail", init=init,
                                    hyp=finetune_hyp(opts.base))
        if init is not None and init.report is not None:
            write(trial, transfer=transfer_attr(init.report))
        history = [_round_record(r) for r in result.history]
        write(trial, wall_time=round(result.wall_time, 3))
        write_history(trial, history, self.store)
        if result.status == Outcome.FAILED:
            write(trial, fail_reason=result.reason)
            _safe(lambda: write_model_yaml(trial, text, self.store, self._header(trial, params, gflops)))
            self._end(trial, Outcome.FAILED)
            raise CandidateFailed(result.reason)
        write(trial, fitness=float(result.fitness), mAP50=float(result.mAP50), mAP50_95=float(result.mAP50_95))
        write_model_yaml(trial, text, self.store, self._header(trial, params, gflops))  # as export-best writes it
        if self.table is not None:  # the real latency next to the table's prediction (the table's error)
            write(trial, measured_latency=latency_attr(measure_candidate(cfg, self.table, space.imgsz, opts.device)))
        self._end(trial, Outcome.STOPPED if result.status == Outcome.STOPPED else Outcome.TRAINED)
        if not math.isfinite(result.fitness):
            raise CandidateFailed("non-finite fitness")
        return float(result.fitness), cost

    def _header(self, trial, params: int, gflops: float) -> str:
        """The provenance comment lines heading the trial's model YAML artifact; '' without a `header`, or for a
        study without nas attrs (the YAML alone still rebuilds the model)."""
        if self.header is None:
            return ""
        try:
            name = Path(MODEL_YAML_ARTIFACT.format(number=trial.number))
            return self.header(trial.study, trial, params, gflops, name)
        except Exception:  # noqa: BLE001 - the header is provenance: never lose the model over it
            return ""

    def _initializer(self, arch, mhash: str):
        """With --weights: the hook that puts the checkpoint into the built candidate by the render's index map."""
        if self.opts.base is None:
            return None
        cfg, index_map = render_with_map(self.space, arch)
        if self.nc is not None:
            cfg["nc"] = int(self.nc)  # as the gate renders it
        if model_hash(cfg) != mhash:  # the map must belong to the model that trains
            raise CostMismatch(f"render_with_map and the gate rendered different models for {arch.short()}")
        return Initializer(self.opts.base, index_map)

    def stop_rule(self, trial, gflops: float):
        """The candidate's stop rule (None: train to the end): successive halving at this search's rungs."""
        if not self.rungs:
            return None
        return SuccessiveHalving(trial, gflops, self.opts.epochs, self.opts.eta, rungs=self.rungs)

    def eval_epochs(self) -> list[int] | None:
        """The epochs the trainer scores: the rungs (and the last, always) with early stopping; every epoch
        without, so that the trials' histories serve `nas audit` as its seed-0 proxy runs."""
        return list(self.rungs) if self.opts.early_stop else None

    def _scored_twin(self, study, mhash: str, number: int):
        """The record of a complete trial that scored the same rendered model to the end, if any."""
        for t in study.get_trials(deepcopy=False):
            r = read(t)
            if r.complete and r.number != number and r.model_hash == mhash and r.fitness is not None \
                    and not r.stopped_early:
                return r
        return None

    def _claim_slot(self, trial) -> bool:
        """Claim one of the --trials training slots in the storage before training; False when all are done.

        Claims are decided in trial-number order: a claimant writes its claim, waits until every lower-numbered
        trial still running has decided (claimed a slot, or finished without one: rejected, reused), then
        counts the claims of lower-numbered trials that are scored or still running. Of several workers
        claiming at once, only those within --trials go on, whichever reaches the storage first. When every
        slot is held by a running trial, it waits: for a slot to free up (that trial failed) or for all of
        them to be scored.
        """
        write(trial, claimed=True)
        while True:
            scored = running = undecided = 0
            for t in trial.study.get_trials(deepcopy=False):
                r = read(t)
                if r.number >= trial.number:
                    continue
                if r.claimed:
                    scored += r.scored
                    running += r.state == "RUNNING"
                else:
                    undecided += r.state == "RUNNING"
            if scored >= self.opts.trials:
                return False
            if not undecided and scored + running < self.opts.trials:
                return True
            time.sleep(CLAIM_POLL)
            fail_dead_trials(trial.study, one_process=False)  # a dead claimant frees its slot
            fail_stale_trials(trial.study)

    def _end(self, trial, outcome: Outcome) -> None:
        write(trial, outcome=outcome)
        if self.progress.trial_end:
            self.progress.trial_end(trial.number, outcome.value, read(trial))


def _no_slot(reason: str) -> Exception:
    """The exception that ends a trial without a score (PRUNED) when no training slot is left."""
    return optuna.TrialPruned(reason)


def _safe(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001 - bookkeeping must never hide the real outcome
        pass


def _round_record(r: dict) -> dict:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()}


__all__ = ["Objective"]

"""The search objective and loop: sample -> budget gate -> render -> (dedup) -> proxy training with rungs -> record.

Each trial of the Optuna study is one candidate architecture. The gate prices it from the space's cost table:
candidates over the budget are completed as infeasible (with the size of the violation as a constraint)
without being built; the others are rendered and counted on the meta device, and a count that disagrees
with the table stops the search (CostMismatch, a bug). Candidates whose rendered model was already scored
reuse that score; the rest are trained by the proxy trainer, evaluated at the successive-halving rungs
(nas.rungs) and the last epoch, and stopped at a rung where they rank outside the top 1/eta.
Objectives: maximise fitness, minimise the cost axis (`--objective`: GFLOPs, or the latency the study's
latency table predicts; nas.latency.study). Every trained candidate with a table is also measured for real.
"""

from __future__ import annotations

import math
import os
import re
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas import __version__
from nas.budget import Budget
from nas.data.resolve import SYNTHETIC_TRAIN, SYNTHETIC_VAL, proxy_data, synthetic_config
from nas.errors import NasError
from nas.front.pareto import count_outcomes, pareto_front, scored_trials
from nas.gate import CostMismatch
from nas.latency.study import LatencySettings, cost_of, latency_attr, measure_candidate
from nas.record import (
    INTERRUPTED,
    MODEL_YAML_ARTIFACT,
    CandidateFailed,
    Outcome,
    StudyRecord,
    TrialRecord,
    describe,
    enqueue,
    read,
    read_study,
    set_constraints,
    study_attrs,
    write,
    write_history,
    write_model_yaml,
)
from nas.samplers import check_sampler, make_sampler
from nas.weights.base import finetune_hyp, transfer_attr

CLAIM_POLL = 1.0  # seconds between looks at the storage while every training slot is held by another worker
# (study, trial, params, GFLOPs, file name) -> the comment lines heading a model YAML (nas.export.header)
Header = Callable[[Any, Any, int, float, Path], str]


@dataclass
class SearchOptions:
    """Everything `nas search` needs, as plain data (the CLI fills it from its options)."""

    space: str
    budget: Budget
    trials: int = 30
    timeout: float | None = None
    study: str | None = None
    storage: str | None = None
    sampler: str = "tpe"
    seed: int = 0
    data: str | None = None
    epochs: int = 4  # the proxy chosen by bench/bench_fidelity.py (docs/FIDELITY.md): 4 epochs of 512
    imgsz: int = 128  # synthetic images at 128 px in bf16 ranked like the 4x longer reference at tau 0.7
    batch: int = 8
    device: str = "cpu"
    workers: int = 1
    early_stop: bool = True  # successive halving at rungs (nas.rungs); off: every candidate trains to the end
    eta: int = 3  # reduction factor: rungs at epochs / eta^k, the top 1/eta of a rung go on
    precision: str = "auto"  # auto | fp32 | bf16 | fp16; prepare() resolves it to what the device runs
    synthetic_train: int = SYNTHETIC_TRAIN
    synthetic_val: int = SYNTHETIC_VAL
    weights: str | None = None  # --weights: a checkpoint every candidate fine-tunes from (nas.weights.base)
    latency: LatencySettings = field(default_factory=LatencySettings)  # --objective/--latency-on/--latency-threads
    base: Any = field(default=None, repr=False, compare=False)  # its nas.weights.Base, read by prepare()
    sampler_seed_offset: int = 0  # extra worker processes draw other candidates than the first one
    run_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{time.time()}")

    def proxy(self) -> dict[str, Any]:
        """The settings that make scores comparable; a study refuses to resume under different ones."""
        data = str(Path(self.data).resolve()) if self.data else "synthetic"
        return {"data": data, "epochs": self.epochs, "imgsz": self.imgsz, "batch": self.batch,
                "seed": self.seed, "precision": self.precision,
                "synthetic": None if self.data else [self.synthetic_train, self.synthetic_val],
                **({"hyp": finetune_hyp(self.weights)} if finetune_hyp(self.weights) else {})}


@dataclass
class Progress:
    """Callbacks a display can hook into; all optional."""

    trial_start: Callable[..., None] | None = None  # number, choices (`describe`), GFLOPs, predicted latency ms
    epoch_end: Callable[[int, dict], None] | None = None  # number, epoch record
    batch_end: Callable[[int, int, int], None] | None = None  # epoch, batch, batches per epoch
    trial_end: Callable[[int, str, TrialRecord], None] | None = None  # number, outcome, record


@dataclass
class Summary:
    """What a search run did, for the final report."""

    study: str
    storage: str
    trained: int = 0
    rejected: int = 0
    reused: int = 0
    failed: int = 0
    stopped_early: int = 0
    front: list[dict] = field(default_factory=list)
    stopped_reason: str = ""
    rungs: list[int] = field(default_factory=list)  # the rung epochs this run decided at (empty: no early stop)


def parse_duration(text: str | None) -> float | None:
    """'2h', '30m', '90s', '1h30m' or plain seconds -> seconds; None stays None."""
    if text is None or str(text).strip() == "":
        return None
    s = str(text).strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", s):
        value = float(s)
    else:
        parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", s)
        if not parts or "".join(a + b for a, b in parts) != s:
            raise NasError(f"--timeout {text!r} is not a duration; use e.g. 90s, 30m, 2h or 1h30m")
        value = sum(float(a) * {"h": 3600, "m": 60, "s": 1}[b] for a, b in parts)
    if value <= 0:
        raise NasError(f"--timeout {text!r} must be positive")
    return value


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
        from nas.storage import trial_heartbeat

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
        from nas.gate import gate
        from nas.space import model_hash, sample, to_yaml
        from nas.train import train_and_evaluate

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
        from nas.space import model_hash, render_with_map
        from nas.weights.base import Initializer

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
        from nas.rungs import SuccessiveHalving

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

        Every claimant writes its claim first and then counts the claims of lower-numbered trials that are
        scored or still running, so of several workers claiming at once only those within --trials go on. When
        every slot is held by a running trial, it waits: for a slot to free up (that trial failed) or for all
        of them to be scored.
        """
        from nas.storage import fail_dead_trials, fail_stale_trials

        write(trial, claimed=True)
        while True:
            scored = running = 0
            for t in trial.study.get_trials(deepcopy=False):
                r = read(t)
                if r.number < trial.number and r.claimed:
                    scored += r.scored
                    running += r.state == "RUNNING"
            if scored + running < self.opts.trials:
                return True
            if scored >= self.opts.trials:
                return False
            time.sleep(CLAIM_POLL)
            fail_dead_trials(trial.study, one_process=False)  # a dead claimant frees its slot
            fail_stale_trials(trial.study)

    def _end(self, trial, outcome: Outcome) -> None:
        write(trial, outcome=outcome)
        if self.progress.trial_end:
            self.progress.trial_end(trial.number, outcome.value, read(trial))


def _no_slot(reason: str) -> Exception:
    """The exception that ends a trial without a score (PRUNED) when no training slot is left."""
    import optuna

    return optuna.TrialPruned(reason)


def _safe(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001 - bookkeeping must never hide the real outcome
        pass


def _round_record(r: dict) -> dict:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()}


def prepare(opts: SearchOptions):
    """Validate everything before any work: space, budget, sampler, storage, data. Returns the pieces."""
    from nas.device import parse_device
    from nas.space import load_space
    from nas.train.precision import resolve_precision

    check_sampler(opts.sampler)
    if opts.trials < 1:
        raise NasError(f"--trials must be at least 1, got {opts.trials}")
    if opts.workers < 1:
        raise NasError(f"--workers must be at least 1, got {opts.workers}")
    if isinstance(opts.eta, bool) or not isinstance(opts.eta, int) or opts.eta < 2:
        raise NasError(f"--eta must be an integer of at least 2 (the rungs' reduction factor), got {opts.eta!r}")
    if opts.imgsz % 32 or opts.imgsz < 64:
        raise NasError(f"--imgsz {opts.imgsz} must be a multiple of 32 and at least 64")
    if not opts.budget:
        raise NasError("--budget is required, e.g. --budget 10gflops (see `nas space SPACE` for the costs)")
    opts.latency.check()  # --objective, --latency-on, --latency-threads (onnxruntime installed)
    opts.device = parse_device(opts.device)
    opts.precision = resolve_precision(opts.precision, opts.device).name  # stored as what actually runs
    space = load_space(opts.space)
    if opts.weights is not None:  # read (safely) and checked against the space before any study is touched
        from nas.weights.base import fit_space, load_base

        opts.base = load_base(opts.weights)
        space = fit_space(space, opts.base)
    opts.space = space.path  # a shipped space's name becomes its file, for the study and the workers
    return space


def open_study(space, opts: SearchOptions):
    """Create or resume the study, refusing a different space or different proxy settings."""
    import optuna

    from nas.latency.study import resume_settings, set_metric_names
    from nas.storage import create_or_resume, refuse_sqlite_with_workers

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    refuse_sqlite_with_workers(opts.storage, opts.workers)
    name = opts.study or space.name
    attrs = study_attrs(StudyRecord(created_by=opts.run_id, space_path=str(opts.space), base=space.base,
                                    imgsz=space.imgsz, budget=opts.budget.to_attr(), nas_version=__version__,
                                    points=[p.name for p in space.points], proxy=opts.proxy(), sampler=opts.sampler,
                                    weights=opts.base.to_attr() if opts.base is not None else None,
                                    objective=opts.latency.objective))
    study = create_or_resume(opts.storage, name, space_hash=space.hash, attrs=attrs,
                             sampler=make_sampler(opts.sampler, opts.seed))

    n = len(study.get_trials(deepcopy=False))
    if n or opts.sampler_seed_offset:  # a resumed study or an extra worker must not replay the first proposals
        study.sampler = make_sampler(opts.sampler, opts.seed + n + opts.sampler_seed_offset)
    _check_weights(study, name, opts)
    opts.latency = resume_settings(study, name, opts.latency)  # refuses another --objective
    for key, label in (("budget", "--budget"),
                       ("proxy", "proxy settings (--data/--epochs/--imgsz/--batch/--seed/--precision)")):
        stored = getattr(read_study(study), key)
        if key == "proxy" and isinstance(stored, dict):
            stored = {"precision": "fp32", **stored}  # studies from before --precision trained in fp32
        if stored is not None and stored != attrs[key]:
            raise NasError(f"study {name!r} was searched with {label} {stored}, not {attrs[key]}; scores would not "
                           f"compare: rerun with the same settings or start a new study with --study {name}-2")
    set_metric_names(study, opts.latency.objective)
    return study


def _check_weights(study, name: str, opts: SearchOptions) -> None:
    """Refuse to resume a study from other weights than it was searched from (or from none)."""
    stored = read_study(study).weights
    given = opts.base
    if stored is None and given is None:
        return
    if stored is None:
        raise NasError(f"study {name!r} was searched from scratch; --weights {opts.weights} would fine-tune its "
                       f"next candidates and the scores would not compare: drop --weights or start a new study "
                       f"with --study {name}-weights")
    was = f"{stored.get('name')} (sha256 {str(stored.get('sha256'))[:8]}…)"
    if given is None:
        raise NasError(f"study {name!r} was searched fine-tuning from {was}; resume it with --weights "
                       f"{stored.get('path')} or start a new study with --study {name}-2")
    if stored.get("sha256") != given.sha256:
        raise NasError(f"study {name!r} was searched fine-tuning from {was}, not {given.short()}; resume it with "
                       f"--weights {stored.get('path')} or start a new study with --study {name}-2")


def enqueue_start(study, space, run_id: str | None = None) -> None:
    """Baseline first; then re-run candidates a Ctrl-C interrupted (once each).

    Only the process that created the study enqueues the baseline at once: several workers may start on a
    brand-new study together, and a joining worker waits briefly for the creator instead.
    """
    from optuna.trial import TrialState

    from nas.space import baseline, has_baseline, trial_params

    trials = study.get_trials(deepcopy=False)
    if not trials and run_id is not None and read_study(study).created_by != run_id:
        time.sleep(3.0)  # a worker that joined a brand-new study: give its creator time to enqueue
        trials = study.get_trials(deepcopy=False)
    if not trials:
        if has_baseline(space):  # a space where some point must hold a block has no base model to score first
            enqueue(study, trial_params(space, baseline(space)), baseline=True)
        return
    records = [read(t) for t in trials]
    retried = {r.retry_of for r in records}
    for t, r in zip(trials, records, strict=True):
        if t.state == TrialState.FAIL and r.fail_reason == INTERRUPTED and t.number not in retried:
            enqueue(study, t.params, retry_of=t.number, baseline=r.baseline)


def resolve_search_data(opts: SearchOptions, space=None):
    """The DataSpec every trial trains on (nas.data.resolve: the built-in synthetic set unless --data is given),
    after the space's own checks against it: its widest base must fit in memory, its nc must be the data's."""
    synthetic = (opts.synthetic_train, opts.synthetic_val)
    if space is not None:  # before an image is made or read: the base at its widest and deepest must fit
        widest = dict(space.base_cfg, depth_multiple=max(space.depth_multiple),
                      width_multiple=max(space.width_multiple))
        check_search_memory(widest, opts, space.nc, synthetic_config(opts.imgsz, synthetic))
    spec = proxy_data(opts.data, opts.imgsz, synthetic)  # missing or empty splits fail before a study is touched
    if space is not None and space.nc is not None and space.nc != spec.nc:
        raise NasError(f"{space.path}: nc={space.nc} but the data has {spec.nc} classes ({opts.data or 'synthetic'}); "
                       f"remove nc from the space or use matching data")
    return spec


def check_search_memory(cfg: dict, opts: SearchOptions, nc: int | None, synthetic) -> None:
    """NasError when training cfg at --imgsz and --batch cannot fit in this machine's memory."""
    from nas.data.dataset import list_images
    from nas.train.memory import check_proxy_memory
    from nas.train.trainer import resolve_data

    if opts.data:
        spec = resolve_data(opts.data, opts.imgsz)
        where = str(spec.yaml) if spec.yaml else "the data dict"
        n_train, n_val = (len(list_images(getattr(spec, s), s, where)) for s in ("train", "val"))
        nc = nc or spec.nc
    else:
        n_train, n_val, nc = synthetic.n_train, synthetic.n_val, nc or len(synthetic.names)
    check_proxy_memory(cfg, nc, opts.imgsz, opts.batch, n_train, n_val,
                       what=f"the space's base at width {cfg['width_multiple']}")


def run_search(opts: SearchOptions, progress: Progress | None = None, space=None, study=None,
               data_spec=None, table=None, header: Header | None = None) -> Summary:
    """Run (or resume) a search in this process until --trials candidates are scored, or --timeout.

    The data is resolved and checked before the study is opened, so bad input leaves storage untouched.
    `header` heads every model YAML artifact (the command hands in nas.export.header; None: the bare YAML).
    """
    import optuna

    from nas.latency.study import study_table
    from nas.rungs import study_rungs
    from nas.storage import artifact_store, mask_url

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failed candidates are reported by the display
    space = space or prepare(opts)
    data_spec = data_spec or resolve_search_data(opts, space)
    study = study or open_study(space, opts)
    store = artifact_store(opts.storage)
    enqueue_start(study, space, opts.run_id)
    rungs = study_rungs(study, opts.epochs, opts.eta)[0] if opts.early_stop else []
    nc = space.nc or (data_spec.nc if data_spec is not None else None)
    table = table or study_table(study, space, opts.latency, opts.budget, opts.device, nc)  # stored: reused
    objective = Objective(space, opts, data_spec, store, progress, rungs=rungs, table=table, header=header)
    summary = Summary(study.study_name, mask_url(opts.storage), rungs=rungs)
    deadline = None if opts.timeout is None else time.monotonic() + opts.timeout
    max_sampled = max(50, 25 * opts.trials)  # guard: a budget almost nothing fits

    def stop_when_done(study_, _trial) -> None:
        done = len(scored_trials(study_))
        if done >= opts.trials:
            summary.stopped_reason = f"{done} candidates scored"
            study_.stop()
        elif len(study_.get_trials(deepcopy=False)) >= max_sampled:
            summary.stopped_reason = f"stopped after {max_sampled} sampled candidates: the budget rejects most of them"
            study_.stop()
        elif deadline is not None and time.monotonic() >= deadline:
            summary.stopped_reason = "timeout"
            study_.stop()

    if len(scored_trials(study)) >= opts.trials:
        summary.stopped_reason = f"the study already has {len(scored_trials(study))} scored candidates; " \
                                 f"raise --trials to search more"
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.optimize(objective, n_trials=None, timeout=opts.timeout, catch=(CandidateFailed,),
                           callbacks=[stop_when_done], gc_after_trial=True)
        if not summary.stopped_reason and deadline is not None:
            summary.stopped_reason = "timeout"
    return summarize(study, summary)


def summarize(study, summary: Summary) -> Summary:
    """Counts per outcome and the current front."""
    counts = count_outcomes(study)
    summary.failed, summary.rejected, summary.reused = counts["failed"], counts["rejected"], counts["reused"]
    summary.trained, summary.stopped_early = counts["trained"], counts["stopped"]
    summary.front = []
    for t in pareto_front(study):
        r = read(t)
        summary.front.append({"trial": t.number, "fitness": t.values[0], "gflops": r.objective_gflops,
                              "latency_ms": r.latency_ms, "params": r.params, "choices": r.choices})
    return summary


__all__ = ["Objective", "Progress", "SearchOptions", "Summary", "enqueue_start", "open_study", "parse_duration",
           "prepare", "resolve_search_data", "run_search", "summarize"]

"""The search objective and loop: sample -> render -> budget gate -> (dedup) -> proxy training -> record.

Each trial of the Optuna study is one candidate architecture. Candidates over the budget are counted on the
meta device and completed as infeasible (with the size of the violation as a constraint) without training;
candidates whose rendered model was already scored reuse that score; the rest are trained by the proxy
trainer and scored by fitness. Objectives: maximise fitness, minimise GFLOPs.
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
from nas.errors import NasError

SAMPLERS = ("tpe", "nsga2", "gp", "random")
INTERRUPTED = "interrupted by the user (Ctrl-C)"


@dataclass
class SearchOptions:
    """Everything `nas search` needs, as plain data (the CLI fills it from its options)."""

    space: str
    budget: Budget
    trials: int = 5
    timeout: float | None = None
    study: str | None = None
    storage: str | None = None
    sampler: str = "tpe"
    seed: int = 0
    data: str | None = None
    epochs: int = 8
    imgsz: int = 256
    batch: int = 8
    device: str = "cpu"
    workers: int = 1
    early_stop: bool = True
    early_stop_ratio: float = 0.6  # stop when fitness < ratio x the best cheaper-or-equal trial at that epoch
    early_stop_floor: float = 0.02  # ... and that best is at least this (below it, scores are mostly noise)
    synthetic_train: int = 256
    synthetic_val: int = 64
    sampler_seed_offset: int = 0  # extra worker processes draw other candidates than the first one
    run_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{time.time()}")

    def proxy(self) -> dict[str, Any]:
        """The settings that make scores comparable; a study refuses to resume under different ones."""
        data = str(Path(self.data).resolve()) if self.data else "synthetic"
        return {"data": data, "epochs": self.epochs, "imgsz": self.imgsz, "batch": self.batch,
                "seed": self.seed,
                "synthetic": None if self.data else [self.synthetic_train, self.synthetic_val]}


@dataclass
class Progress:
    """Callbacks a display can hook into; all optional."""

    trial_start: Callable[[int, dict[str, str], float], None] | None = None  # number, choices, GFLOPs
    epoch_end: Callable[[int, dict], None] | None = None  # number, epoch record
    batch_end: Callable[[int, int, int], None] | None = None  # epoch, batch, batches per epoch
    trial_end: Callable[[int, str, dict], None] | None = None  # number, outcome, user attrs


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


def make_sampler(name: str, seed: int | None):
    """The Optuna sampler for --sampler; all of them read the constraints set with trial.set_constraint."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=8)
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=20)
        if name == "gp":
            try:
                import scipy  # noqa: F401
            except ImportError:
                raise NasError("--sampler gp needs scipy: pip install scipy") from None
            return optuna.samplers.GPSampler(seed=seed)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
    raise NasError(f"--sampler {name!r} is unknown; choose one of {', '.join(SAMPLERS)}")


def _completed(study) -> list:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def scored_trials(study) -> list:
    """Complete trials that were trained (to the end or stopped early), not rejected or reused."""
    return [t for t in _completed(study) if t.user_attrs.get("outcome") in ("trained", "stopped")]


class Objective:
    """One call = one candidate: sample, render, gate on the budget, dedup, train, record."""

    def __init__(self, space, opts: SearchOptions, data_spec, store, progress: Progress | None = None):
        self.space = space
        self.opts = opts
        self.data_spec = data_spec
        self.store = store
        self.progress = progress or Progress()
        # candidates are rendered, counted and exported with the classes they are trained on
        self.nc = space.nc or (data_spec.nc if data_spec is not None else None)

    def __call__(self, trial) -> tuple[float, float]:
        from nas.study import trial_heartbeat

        try:
            with trial_heartbeat(trial):
                return self._run(trial)
        except KeyboardInterrupt:
            _safe(lambda: trial.set_user_attr("fail_reason", INTERRUPTED))
            raise
        except NasError as e:
            reason = str(e)
            _safe(lambda: trial.set_user_attr("fail_reason", reason))
            raise

    def _run(self, trial) -> tuple[float, float]:
        from nas.cost import count
        from nas.space import model_hash, render, sample, to_yaml
        from nas.study import save_model_yaml
        from nas.train import train_and_evaluate

        space, opts = self.space, self.opts
        arch = sample(space, trial)
        cfg = render(space, arch)
        if self.nc is not None:
            cfg["nc"] = self.nc
        mhash = model_hash(cfg)
        cost = count(cfg, space.imgsz)
        gflops, params = cost.gflops, cost.params
        short = arch.short()
        is_baseline = bool(trial.user_attrs.get("baseline"))  # set when enqueued first
        attrs = {"choices": short, "arch": arch.to_dict(), "model_hash": mhash, "gflops": round(gflops, 6),
                 "params": params, "seed": opts.seed, "baseline": is_baseline}
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        for key, value in opts.budget.violations(gflops, params).items():
            trial.set_constraint(key, value)
        if self.progress.trial_start:
            self.progress.trial_start(trial.number, short, gflops)

        if opts.budget.exceeded(gflops, params):
            trial.set_user_attr("over_budget", True)
            self._end(trial, "rejected")
            return 0.0, gflops

        twin = self._scored_twin(trial.study, mhash, trial.number)
        if twin is not None:
            for key in ("fitness", "mAP50", "mAP50-95", "history", "wall_time"):
                if key in twin.user_attrs:
                    trial.set_user_attr(key, twin.user_attrs[key])
            trial.set_user_attr("reused_from", twin.number)
            self._end(trial, "reused")
            return float(twin.user_attrs["fitness"]), gflops

        text = to_yaml(cfg)
        trial.set_user_attr("model_yaml", text)
        _safe(lambda: save_model_yaml(trial.study, trial, text, self.store))

        stopper = EarlyStop(trial.study, gflops, opts.early_stop_ratio, opts.epochs, opts.early_stop_floor) \
            if opts.early_stop else None

        def on_epoch(record: dict) -> bool:
            if self.progress.epoch_end:
                self.progress.epoch_end(trial.number, record)
            if stopper is not None and stopper.should_stop(record):
                trial.set_user_attr("stopped_early", {"epoch": record["epoch"], "reason": stopper.reason})
                return False
            return True

        result = train_and_evaluate(cfg, data=self.data_spec, epochs=opts.epochs, imgsz=opts.imgsz,
                                    batch=opts.batch, seed=opts.seed, device=opts.device, callback=on_epoch,
                                    batch_callback=self.progress.batch_end)
        history = [_round_record(r) for r in result.history]
        trial.set_user_attr("history", history)
        trial.set_user_attr("wall_time", round(result.wall_time, 3))
        if result.status == "failed":
            trial.set_user_attr("fail_reason", result.reason)
            self._end(trial, "failed")
            raise CandidateError(result.reason)
        for key, value in (("fitness", result.fitness), ("mAP50", result.mAP50), ("mAP50-95", result.mAP50_95)):
            trial.set_user_attr(key, float(value))
        self._end(trial, "stopped" if result.status == "stopped" else "trained")
        if not math.isfinite(result.fitness):
            raise CandidateError("non-finite fitness")
        return float(result.fitness), gflops

    def _scored_twin(self, study, mhash: str, number: int):
        for t in _completed(study):
            if t.number != number and t.user_attrs.get("model_hash") == mhash and "fitness" in t.user_attrs \
                    and not t.user_attrs.get("stopped_early"):
                return t
        return None

    def _end(self, trial, outcome: str) -> None:
        trial.set_user_attr("outcome", outcome)
        if self.progress.trial_end:
            self.progress.trial_end(trial.number, outcome, dict(trial.user_attrs))


class CandidateError(Exception):
    """A candidate's proxy run failed (NaN loss, an exception, out of memory); the search goes on."""


def _safe(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001 - bookkeeping must never hide the real outcome
        pass


def _round_record(r: dict) -> dict:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()}


class EarlyStop:
    """Stops a proxy run whose fitness is clearly behind finished trials that cost no more.

    At epoch e (from half of the run on) it compares the candidate's fitness with the fitness at epoch e of
    finished, trained trials whose GFLOPs are at most its own: if the best of them is above `floor` and more
    than 1/ratio times better, the candidate is unlikely to reach the Pareto front and its run stops. A
    stopped trial keeps its best score so far, which that cheaper reference normally dominates.
    Multi-objective studies cannot prune in Optuna, so this replaces a pruner; intermediate values live in
    the `history` user attribute.
    """

    def __init__(self, study, gflops: float, ratio: float, epochs: int, floor: float = 0.02,
                 min_references: int = 2):
        self.study = study
        self.gflops = gflops
        self.ratio = ratio
        self.floor = floor
        self.first_epoch = max(2, math.ceil(epochs / 2))
        self.min_references = min_references
        self.reason = ""

    def should_stop(self, record: dict) -> bool:
        epoch = int(record["epoch"])
        if epoch < self.first_epoch or "fitness" not in record:  # an epoch the trainer did not score
            return False
        mine = float(record.get("fitness", 0.0))
        refs = []
        for t in scored_trials(self.study):
            if float(t.user_attrs.get("gflops", math.inf)) > self.gflops:
                continue
            for r in t.user_attrs.get("history", []):
                if int(r.get("epoch", -1)) == epoch and "fitness" in r:
                    refs.append((float(r.get("fitness", 0.0)), t.number))
        if len(refs) < self.min_references:
            return False
        best, number = max(refs)
        if best >= self.floor and mine < self.ratio * best:
            self.reason = (f"fitness {mine:.4f} at epoch {epoch} < {self.ratio:g} x {best:.4f} of trial {number}, "
                           f"which costs no more")
            return True
        return False


def prepare(opts: SearchOptions):
    """Validate everything before any work: space, budget, sampler, storage, data. Returns the pieces."""
    from nas.space import load_space

    if opts.sampler not in SAMPLERS:
        raise NasError(f"--sampler {opts.sampler!r} is unknown; choose one of {', '.join(SAMPLERS)}")
    if opts.trials < 1:
        raise NasError(f"--trials must be at least 1, got {opts.trials}")
    if opts.workers < 1:
        raise NasError(f"--workers must be at least 1, got {opts.workers}")
    if opts.imgsz % 32 or opts.imgsz < 64:
        raise NasError(f"--imgsz {opts.imgsz} must be a multiple of 32 and at least 64")
    if not opts.budget:
        raise NasError("--budget is required, e.g. --budget 10gflops (see `nas space SPACE` for the costs)")
    _check_device(opts.device)
    space = load_space(opts.space)
    return space


def _check_device(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise NasError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    elif device != "cpu":
        raise NasError(f"--device {device!r} is unknown; use cpu, cuda or cuda:N")


def open_study(space, opts: SearchOptions):
    """Create or resume the study, refusing a different space or different proxy settings."""
    import optuna

    from nas.study import create_or_resume, refuse_sqlite_with_workers

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    refuse_sqlite_with_workers(opts.storage, opts.workers)
    name = opts.study or space.name
    attrs = {"created_by": opts.run_id,
             "space_path": str(opts.space), "base": space.base, "imgsz": list(space.imgsz),
             "budget": opts.budget.to_attr(), "nas_version": __version__,
             "points": [p.name for p in space.points], "proxy": opts.proxy(), "sampler": opts.sampler}
    study = create_or_resume(opts.storage, name, space_hash=space.hash, attrs=attrs,
                             sampler=make_sampler(opts.sampler, opts.seed))

    n = len(study.get_trials(deepcopy=False))
    if n or opts.sampler_seed_offset:  # a resumed study or an extra worker must not replay the first proposals
        study.sampler = make_sampler(opts.sampler, opts.seed + n + opts.sampler_seed_offset)
    for key, label in (("budget", "--budget"), ("proxy", "proxy settings (--data/--epochs/--imgsz/--batch/--seed)")):
        stored = study.user_attrs.get(key)
        if stored is not None and stored != attrs[key]:
            raise NasError(f"study {name!r} was searched with {label} {stored}, not {attrs[key]}; scores would not "
                           f"compare: rerun with the same settings or start a new study with --study {name}-2")
    return study


def enqueue_start(study, space, run_id: str | None = None) -> None:
    """Baseline first; then re-run candidates a Ctrl-C interrupted (once each).

    Only the process that created the study enqueues the baseline at once: several workers may start on a
    brand-new study together, and a joining worker waits briefly for the creator instead.
    """
    from optuna.trial import TrialState

    from nas.space import baseline, trial_params

    trials = study.get_trials(deepcopy=False)
    if not trials and run_id is not None and study.user_attrs.get("created_by") != run_id:
        time.sleep(3.0)  # a worker that joined a brand-new study: give its creator time to enqueue
        trials = study.get_trials(deepcopy=False)
    if not trials:
        study.enqueue_trial(trial_params(space, baseline(space)), user_attrs={"baseline": True})
        return
    waiting = {t.user_attrs.get("retry_of") for t in trials if t.state == TrialState.WAITING}
    retried = {t.user_attrs.get("retry_of") for t in trials}
    for t in trials:
        if t.state == TrialState.FAIL and t.user_attrs.get("fail_reason") == INTERRUPTED \
                and t.number not in retried and t.number not in waiting:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number,
                                                       "baseline": bool(t.user_attrs.get("baseline"))})


def resolve_search_data(opts: SearchOptions, space=None):
    """The DataSpec every trial trains on (the built-in synthetic set unless --data is given)."""
    from nas.data import SyntheticConfig
    from nas.train.trainer import resolve_data

    if opts.data:
        spec = resolve_data(opts.data, opts.imgsz)
    else:
        spec = resolve_data(SyntheticConfig(n_train=opts.synthetic_train, n_val=opts.synthetic_val,
                                            size=opts.imgsz), opts.imgsz)
    from nas.data import load_split

    for split in ("train", "val"):  # missing or empty splits fail here, before any study is touched
        load_split(spec, split, opts.imgsz)  # (kept in memory for the trials)
    if space is not None and space.nc is not None and space.nc != spec.nc:
        raise NasError(f"{space.path}: nc={space.nc} but the data has {spec.nc} classes ({opts.data or 'synthetic'}); "
                       f"remove nc from the space or use matching data")
    return spec


def run_search(opts: SearchOptions, progress: Progress | None = None, space=None, study=None,
               data_spec=None) -> Summary:
    """Run (or resume) a search in this process until --trials candidates are scored, or --timeout.

    The data is resolved and checked before the study is opened, so bad input leaves storage untouched.
    """
    import optuna

    from nas.study import artifact_store, mask_url

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failed candidates are reported by the display
    space = space or prepare(opts)
    data_spec = data_spec or resolve_search_data(opts, space)
    study = study or open_study(space, opts)
    store = artifact_store(opts.storage)
    enqueue_start(study, space, opts.run_id)
    objective = Objective(space, opts, data_spec, store, progress)
    summary = Summary(study.study_name, mask_url(opts.storage))
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
            study.optimize(objective, n_trials=None, timeout=opts.timeout, catch=(CandidateError,),
                           callbacks=[stop_when_done], gc_after_trial=True)
        if not summary.stopped_reason and deadline is not None:
            summary.stopped_reason = "timeout"
    return summarize(study, summary)


def summarize(study, summary: Summary) -> Summary:
    """Counts per outcome and the current front."""
    from optuna.trial import TrialState

    from nas.study import pareto_front

    for t in study.get_trials(deepcopy=False):
        outcome = t.user_attrs.get("outcome")
        if t.state == TrialState.FAIL:
            summary.failed += 1
        elif outcome == "rejected":
            summary.rejected += 1
        elif outcome == "reused":
            summary.reused += 1
        elif outcome in ("trained", "stopped"):
            summary.trained += 1
            summary.stopped_early += outcome == "stopped"
    summary.front = [{"trial": t.number, "fitness": t.values[0], "gflops": t.values[1],
                      "params": t.user_attrs.get("params"), "choices": t.user_attrs.get("choices", {})}
                     for t in pareto_front(study)]
    return summary


def worker_command(opts: SearchOptions) -> list[str]:
    """The command line of one extra worker process for --workers K (same study, one worker each)."""
    import sys

    cmd = [sys.executable, "-m", "nas.cli", "search", "--space", str(opts.space), "--trials", str(opts.trials),
           "--sampler", opts.sampler, "--seed", str(opts.seed), "--epochs", str(opts.epochs),
           "--imgsz", str(opts.imgsz), "--batch", str(opts.batch), "--device", opts.device, "--workers", "1",
           "--worker"]
    budget = opts.budget
    if budget.gflops is not None:
        cmd += ["--budget", f"{budget.gflops!r}gflops"]
    if budget.params is not None:
        cmd += ["--budget", f"{budget.params}params"]
    for flag, value in (("--study", opts.study), ("--storage", opts.storage), ("--data", opts.data)):
        if value is not None:
            cmd += [flag, str(value)]
    if opts.timeout is not None:
        cmd += ["--timeout", f"{opts.timeout:g}"]
    if not opts.early_stop:
        cmd.append("--no-early-stop")
    return cmd


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


__all__ = ["SAMPLERS", "EarlyStop", "Objective", "Progress", "SearchOptions", "Summary", "make_sampler",
           "open_study", "parse_duration", "prepare", "run_search", "scored_trials", "worker_command"]

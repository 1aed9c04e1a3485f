"""The search loop: validate the options, open (or resume) the study, queue the baseline and interrupted
candidates, and run the objective until --trials candidates are scored or --timeout; then count the outcomes."""

from __future__ import annotations

import time
import warnings

import optuna
from optuna.trial import TrialState

from nas import __version__
from nas.device import parse_device
from nas.errors import NasError
from nas.front.pareto import count_outcomes, pareto_front, scored_trials
from nas.latency.study import resume_settings, set_metric_names, study_table
from nas.record import INTERRUPTED, CandidateFailed, StudyRecord, enqueue, read, read_study, study_attrs
from nas.search.data import resolve_search_data
from nas.search.objective import Objective
from nas.search.options import Header, Progress, SearchOptions, Summary
from nas.search.rungs import study_rungs
from nas.search.samplers import check_sampler, make_sampler
from nas.space import baseline, has_baseline, load_space, trial_params
from nas.storage import artifact_store, create_or_resume, mask_url, refuse_sqlite_with_workers
from nas.train.precision import resolve_precision
from nas.weights.base import fit_space, load_base


def prepare(opts: SearchOptions):
    """Validate everything before any work: space, budget, sampler, storage, data. Returns the pieces."""
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
        opts.base = load_base(opts.weights)
        space = fit_space(space, opts.base)
    opts.space = space.path  # a shipped space's name becomes its file, for the study and the workers
    return space


def open_study(space, opts: SearchOptions):
    """Create or resume the study, refusing a different space or different proxy settings."""
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


def run_search(opts: SearchOptions, progress: Progress | None = None, space=None, study=None,
               data_spec=None, table=None, header: Header | None = None) -> Summary:
    """Run (or resume) a search in this process until --trials candidates are scored, or --timeout.

    The data is resolved and checked before the study is opened, so bad input leaves storage untouched.
    `header` heads every model YAML artifact (the command hands in nas.export.header; None: the bare YAML).
    """
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


__all__ = ["enqueue_start", "open_study", "prepare", "run_search", "summarize"]

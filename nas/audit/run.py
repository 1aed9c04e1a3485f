"""`nas audit` as one function: validate, plan the jobs, run the missing ones, build the report, store a summary."""

from __future__ import annotations

from dataclasses import dataclass, field

from nas.audit.candidates import MIN_CANDIDATES, Candidate, model_candidates, select_candidates, study_candidates
from nas.audit.jobs import (
    AUX_SUFFIX,
    Job,
    WorkerHooks,
    aux_name,
    completed_runs,
    enqueue_missing,
    job_states,
    open_aux,
    plan_jobs,
    recover_dead,
    work,
)
from nas.audit.links import NasError, build_data, check_device, load_nas_study, load_study, mask_url, study_names
from nas.audit.report import AuditReport, AuditSummary, CandidateRuns, build_report

SUMMARY_ATTR = "audit"  # study user attr holding the AuditSummary of the last finished audit


@dataclass
class AuditOptions:
    """Everything `nas audit` needs, as plain data (the CLI fills it from its options)."""

    study: str | None = None
    storage: str | None = None
    candidates: int = 12
    reference_epochs: int | None = None  # default: 4 x the study's proxy epochs
    seeds: int = 2
    models: list[str] = field(default_factory=list)
    device: str = "cpu"
    max_jobs: int | None = None  # run at most this many jobs in this process (the rest on the next call)
    n_boot: int = 1000


@dataclass
class Plan:
    """A validated audit: the study, its proxy, the data, the candidates and their jobs."""

    study: object
    storage: str | None
    proxy: dict
    data: object
    candidates: list[Candidate]
    jobs: list[Job]
    reference_epochs: int
    seeds: int

    @property
    def seed(self) -> int:
        return int(self.proxy.get("seed", 0))


def audited_study_name(storage: str | None, name: str | None) -> str | None:
    """The study to audit: the given name, else the only study in the storage that is not an audit's."""
    if name is not None:
        return name
    names = [n for n in study_names(storage) if not n.endswith(AUX_SUFFIX)]
    return names[0] if len(names) == 1 else None


def scored(study) -> list:
    """COMPLETE trials trained to the end or stopped early (the ones with a fitness)."""
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get("outcome") in ("trained", "stopped")]


def prepare(opts: AuditOptions) -> Plan:
    """Validate every input and plan the jobs; stores nothing. NasError on bad input."""
    if opts.candidates < MIN_CANDIDATES:
        raise NasError(f"--candidates must be at least {MIN_CANDIDATES} (a ranking needs three), got {opts.candidates}")
    if opts.seeds < 0:
        raise NasError(f"--seeds must be 0 or more, got {opts.seeds}")
    if opts.max_jobs is not None and opts.max_jobs < 0:
        raise NasError(f"--max-jobs must be 0 or more, got {opts.max_jobs}")
    check_device(opts.device)
    if opts.study and opts.study.endswith(AUX_SUFFIX):
        raise NasError(f"--study {opts.study} holds an audit's runs; audit the searched study "
                       f"--study {opts.study[:-len(AUX_SUFFIX)]}")
    study = load_nas_study(opts.storage, audited_study_name(opts.storage, opts.study))
    proxy = study.user_attrs.get("proxy")
    if not isinstance(proxy, dict) or not proxy.get("epochs"):
        raise NasError(f"study {study.study_name!r} records no proxy settings (user attr 'proxy'); audit a study "
                       f"made by `nas search`")
    epochs = int(proxy["epochs"])
    ref_epochs = opts.reference_epochs if opts.reference_epochs is not None else 4 * epochs
    if ref_epochs <= epochs:
        raise NasError(f"--reference-epochs {ref_epochs} must be more than the study's proxy epochs ({epochs}); "
                       f"e.g. --reference-epochs {4 * epochs}")
    data = build_data(proxy.get("data"), int(proxy["imgsz"]), proxy.get("synthetic"))
    if opts.models:
        cands = model_candidates(list(opts.models), data.nc, study.user_attrs.get("imgsz", proxy["imgsz"]))
    else:
        pool = study_candidates(study, scored(study))
        if len(pool) < MIN_CANDIDATES:
            raise NasError(f"study {study.study_name!r} has {len(pool)} distinct scored trial(s); an audit ranks at "
                           f"least {MIN_CANDIDATES}: search more (nas search ... --trials {MIN_CANDIDATES + 2}) "
                           f"or audit named models with --models yolov5n yolov5s yolov5m")
        cands = _stored_selection(opts, study, pool) or select_candidates(pool, opts.candidates)
    jobs = plan_jobs(cands, epochs, ref_epochs, int(proxy.get("seed", 0)), opts.seeds)
    return Plan(study, opts.storage, proxy, data, cands, jobs, ref_epochs, opts.seeds)


def _selection_key(opts: AuditOptions) -> dict:
    return {"candidates": opts.candidates, "models": list(opts.models)}


def _stored_selection(opts: AuditOptions, study, pool: list[Candidate]) -> list[Candidate] | None:
    """The candidates an earlier run of the same audit chose (the study may have grown since)."""
    if aux_name(study.study_name) not in study_names(opts.storage):
        return None
    aux = load_study(opts.storage, aux_name(study.study_name))
    stored = aux.user_attrs.get("selection")
    if not isinstance(stored, dict) or stored.get("options") != _selection_key(opts):
        return None
    by_key = {c.key: c for c in pool}
    chosen = [by_key[k] for k in stored.get("keys", []) if k in by_key]
    return chosen if len(chosen) >= MIN_CANDIDATES else None


@dataclass
class AuditResult:
    """What an audit run did and found."""

    report: AuditReport
    ran: int  # jobs run by this process
    recovered: list[int]  # job trials of dead processes, failed and queued again
    aux_study: str
    storage: str
    stored: bool  # the summary was written to the study (all jobs finished)


def run_audit(opts: AuditOptions, hooks: WorkerHooks | None = None, plan: Plan | None = None) -> AuditResult:
    """Run (or resume) an audit in this process: enqueue missing jobs, work through the queue, report."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    plan = plan or prepare(opts)
    study = plan.study
    aux = open_aux(plan.storage, study.study_name)
    aux.set_user_attr("audit_of", study.study_name)
    if not opts.models:
        aux.set_user_attr("selection", {"options": _selection_key(opts), "keys": [c.key for c in plan.candidates]})
    recovered = recover_dead(aux, plan.storage)
    by_key = {c.key: c for c in plan.candidates}
    enqueue_missing(aux, plan.jobs, {k: c.model_yaml for k, c in by_key.items()},
                    {k: c.label for k, c in by_key.items()})
    ran = 0
    if opts.max_jobs != 0:
        ran = work(aux, plan.data, imgsz=int(plan.proxy["imgsz"]), batch=int(plan.proxy["batch"]), device=opts.device,
                   wanted={j.key for j in plan.jobs}, max_jobs=opts.max_jobs, hooks=hooks)
    report = report_of(plan, aux, opts.n_boot)
    stored = False
    if report.finished and report.n >= MIN_CANDIDATES:
        summary = AuditSummary.from_report(report)
        study.set_user_attr(SUMMARY_ATTR, summary.to_attr())
        aux.set_user_attr("summary", summary.to_attr())
        stored = True
    return AuditResult(report, ran, recovered, aux.study_name, mask_url(plan.storage), stored)


def report_of(plan: Plan, aux, n_boot: int = 1000) -> AuditReport:
    """The report from the study's own runs and the finished jobs (partial while jobs remain)."""
    runs = completed_runs(aux)
    states = job_states(aux)
    done = sum(1 for j in plan.jobs if states.get(j.key) in ("COMPLETE", "FAILED"))
    cands = []
    for c in plan.candidates:
        cr = CandidateRuns(c.key, c.label, c.gflops, c.params, trial=c.trial, baseline=c.baseline)
        if c.run0 is not None:
            cr.proxy[plan.seed] = c.run0
        for j in plan.jobs:
            run = runs.get(j.key)
            if j.candidate != c.key or run is None:
                continue
            if j.kind == "reference":
                cr.reference = run
            else:
                cr.proxy[j.seed] = run
        cands.append(cr)
    return build_report(plan.study.study_name, cands, proxy_epochs=int(plan.proxy["epochs"]),
                        reference_epochs=plan.reference_epochs, seed=plan.seed, seeds=plan.seeds, jobs_done=done,
                        jobs_total=len(plan.jobs), n_boot=n_boot)


def audit_summary(study) -> AuditSummary | None:
    """The last finished audit of a study (noise sd, tau, verdict), or None when it has none."""
    return AuditSummary.from_attr(study.user_attrs.get(SUMMARY_ATTR))

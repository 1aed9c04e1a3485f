"""`nas audit` as one function: validate, plan the jobs, run the missing ones, build the report, store a summary."""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

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
from nas.audit.report import AuditReport, CandidateRuns, build_report, plot
from nas.data import load_split
from nas.data.resolve import proxy_data
from nas.device import parse_device
from nas.errors import NasError
from nas.lazy import lazy
from nas.record import (
    AuditSummary,
    audit_summary,
    read,
    read_selection,
    read_study,
    store_folder,
    upload_text,
    write_audit_of,
    write_audit_summary,
)
from nas.storage import (
    artifact_store,
    existing_store,
    load_nas_study,
    load_study,
    mask_url,
    study_names,
)
from nas.train.memory import check_proxy_memory
from nas.train.precision import resolve_precision
from nas.weights import alignment
from nas.weights.base import load_base

optuna_dashboard = lazy("optuna_dashboard")  # only to publish a finished audit (its web stack loads slowly)

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
    weights: str | None = None  # the study's checkpoint (--weights); default: its recorded path, if it hashes the same
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
    base: object = None  # nas.weights.base.Base of a study searched with --weights: every run fine-tunes from it

    @property
    def seed(self) -> int:
        return int(self.proxy.get("seed", 0))

    def precision(self, device: str) -> str:
        """What the study's proxy trained in, as this device runs it (studies before --precision: fp32)."""
        return resolve_precision(str(self.proxy.get("precision", "fp32")), device).name


def audited_study_name(storage: str | None, name: str | None) -> str | None:
    """The study to audit: the given name, else the only study in the storage that is not an audit's."""
    if name is not None:
        return name
    names = [n for n in study_names(storage) if not n.endswith(AUX_SUFFIX)]
    return names[0] if len(names) == 1 else None


def scored(study) -> list:
    """COMPLETE trials trained to the end or stopped early (the ones with a fitness)."""
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if read(t).scored]


def prepare(opts: AuditOptions) -> Plan:
    """Validate every input and plan the jobs; stores nothing. NasError on bad input."""
    if opts.candidates < MIN_CANDIDATES:
        raise NasError(f"--candidates must be at least {MIN_CANDIDATES} (a ranking needs three), got {opts.candidates}")
    if opts.seeds < 0:
        raise NasError(f"--seeds must be 0 or more, got {opts.seeds}")
    if opts.max_jobs is not None and opts.max_jobs < 0:
        raise NasError(f"--max-jobs must be 0 or more, got {opts.max_jobs}")
    parse_device(opts.device)
    if opts.study and opts.study.endswith(AUX_SUFFIX):
        raise NasError(f"--study {opts.study} holds an audit's runs; audit the searched study "
                       f"--study {opts.study[:-len(AUX_SUFFIX)]}")
    study = load_nas_study(opts.storage, audited_study_name(opts.storage, opts.study))
    record = read_study(study)
    proxy, epochs = record.proxy, record.proxy_epochs
    if epochs is None:
        raise NasError(f"study {study.study_name!r} records no proxy settings (user attr 'proxy'); audit a study "
                       f"made by `nas search`")
    ref_epochs = opts.reference_epochs if opts.reference_epochs is not None else 4 * epochs
    if ref_epochs <= epochs:
        raise NasError(f"--reference-epochs {ref_epochs} must be more than the study's proxy epochs ({epochs}); "
                       f"e.g. --reference-epochs {4 * epochs}")
    base = study_weights(study, opts.weights)  # before the data: a wrong file is refused at once
    data = study_data(proxy)
    if opts.models:
        cands = model_candidates(list(opts.models), data.nc, record.imgsz or proxy["imgsz"])
    else:
        store = existing_store(opts.storage)
        pool, missing = study_candidates(study, scored(study), store)
        if len(pool) < MIN_CANDIDATES:
            away = (f" ({missing} more have no model YAML in the artifact folder {store_folder(store)}: audit on "
                    f"the machine that ran the search, or copy its artifact folder here)") if missing else ""
            raise NasError(f"study {study.study_name!r} has {len(pool)} distinct scored trial(s){away}; an audit "
                           f"ranks at least {MIN_CANDIDATES}: search more (nas search ... --trials "
                           f"{MIN_CANDIDATES + 2}) or audit named models with --models yolov5n yolov5s yolov5m")
        cands = _stored_selection(opts, study, pool) or select_candidates(pool, opts.candidates)
    _check_memory(cands, data, proxy)
    _check_transfer(base, cands)
    jobs = plan_jobs(cands, epochs, ref_epochs, int(proxy.get("seed", 0)), opts.seeds)
    plan = Plan(study, opts.storage, proxy, data, cands, jobs, ref_epochs, opts.seeds, base)
    plan.precision(opts.device)  # the study's precision must run here: say so before any job is queued
    return plan


def study_data(proxy: dict):
    """The DataSpec a study's proxy trained on, from its proxy record (data, imgsz, synthetic [n_train, n_val])."""
    return proxy_data(proxy.get("data"), int(proxy["imgsz"]), proxy.get("synthetic"))


def study_weights(study, weights: str | None):
    """The checkpoint the study's candidates fine-tuned from (None: from scratch), the same file as the search's:
    --weights, else the recorded path when it is here and hashes the same."""
    stored, name = read_study(study).weights, study.study_name
    if stored is None:
        if weights is not None:
            raise NasError(f"study {name!r} was searched from scratch; --weights {weights} would audit fine-tuned "
                           f"runs against its scores: drop --weights")
        return None
    was = f"{stored.get('name')} (sha256 {str(stored.get('sha256'))[:8]}…)"
    path = weights or stored.get("path")
    if weights is None and not (isinstance(path, str) and Path(path).is_file()):
        raise NasError(f"study {name!r} was searched fine-tuning from {was}, recorded at {path}, which is not here; "
                       f"pass that checkpoint with --weights PATH")
    base = load_base(path)
    if base.sha256 != stored.get("sha256"):
        flag = "--weights " if weights is not None else "the recorded "
        raise NasError(f"{flag}{path} is not the checkpoint study {name!r} was searched from: sha256 "
                       f"{base.sha256[:8]}…, the study's {was}; pass the same file with --weights")
    return base


def _check_transfer(base, cands: list[Candidate]) -> None:
    """NasError before any job when the checkpoint cannot be aligned with a candidate's model YAML."""
    for c in cands if base is not None else []:
        try:
            alignment(base.cfg, {**yaml.safe_load(c.model_yaml), "_source": c.label})
        except NasError as e:
            raise NasError(f"--weights {base.path}: cannot transfer into {c.label}: {e}") from None


def _check_memory(cands: list[Candidate], data, proxy: dict) -> None:
    """NasError before any job when a candidate's proxy run cannot fit in this machine's memory."""
    imgsz, batch = int(proxy["imgsz"]), int(proxy.get("batch", 8))
    n_train, n_val = (len(load_split(data, s, imgsz)) for s in ("train", "val"))
    for c in cands:
        check_proxy_memory(yaml.safe_load(c.model_yaml), data.nc, imgsz, batch, n_train, n_val, what=c.label)


def _selection_key(opts: AuditOptions) -> dict:
    return {"candidates": opts.candidates, "models": list(opts.models)}


def _stored_selection(opts: AuditOptions, study, pool: list[Candidate]) -> list[Candidate] | None:
    """The candidates an earlier run of the same audit chose (the study may have grown since)."""
    if aux_name(study.study_name) not in study_names(opts.storage):
        return None
    aux = load_study(opts.storage, aux_name(study.study_name))
    stored = read_selection(aux)
    if stored is None or stored.get("options") != _selection_key(opts):
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
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    plan = plan or prepare(opts)
    study = plan.study
    aux = open_aux(plan.storage, study.study_name)
    write_audit_of(aux, study.study_name, None if opts.models else
                   {"options": _selection_key(opts), "keys": [c.key for c in plan.candidates]})
    recovered = recover_dead(aux, plan.storage)
    by_key = {c.key: c for c in plan.candidates}
    enqueue_missing(aux, plan.jobs, {k: c.model_yaml for k, c in by_key.items()},
                    {k: c.label for k, c in by_key.items()})
    ran = 0
    if opts.max_jobs != 0:
        ran = work(aux, plan.data, imgsz=int(plan.proxy["imgsz"]), batch=int(plan.proxy["batch"]), device=opts.device,
                   wanted={j.key for j in plan.jobs}, max_jobs=opts.max_jobs, hooks=hooks,
                   precision=plan.precision(opts.device), base=plan.base)
    report = report_of(plan, aux, opts.n_boot)
    stored = False
    if report.finished and report.n >= MIN_CANDIDATES:
        summary = AuditSummary.from_report(report)
        before = audit_summary(study)
        write_audit_summary(study, aux, summary)
        stored = True
        if before is None or {**before.to_attr(), "finished_at": ""} != {**summary.to_attr(), "finished_at": ""}:
            try:
                publish(study, report, plan.storage)  # once per new result, not on every rerun
            except (OSError, NasError):
                pass  # the dashboard view is a convenience: the summary above is stored all the same
    return AuditResult(report, ran, recovered, aux.study_name, mask_url(plan.storage), stored)


def note_markdown(r: AuditReport, plot_url: str | None = None) -> str:
    """The audit as a markdown study note for optuna-dashboard: verdict, rank agreement, seed noise, the plot."""
    def num(v: float, fmt: str = ".2f") -> str:
        return format(v, fmt) if isinstance(v, float) and math.isfinite(v) else "-"

    lines = [f"## Proxy audit: {r.proxy_epochs}-epoch proxy against a {r.reference_epochs}-epoch reference", "",
             f"**Verdict:** {r.verdict}", "",
             f"{r.n} candidates, {r.seeds} extra proxy seed(s) each; {r.jobs_done}/{r.jobs_total} runs "
             f"(`nas audit` stores them in the study `{r.study}{AUX_SUFFIX}`).", "",
             "| score | Kendall τ | τ 95% interval | Spearman ρ |", "|---|---|---|---|"]
    for name in ("proxy", "mean of seeds", "last epoch", "loss sum", "GFLOPs", "params"):
        c = r.correlations.get(name)
        if c is not None:
            lines.append(f"| {name} | {num(c.tau)} | [{num(c.tau_low)}, {num(c.tau_high)}] | {num(c.rho)} |")
    lines += ["", f"Seed noise: fitness sd {num(r.noise_sd, '.4f')}, so differences below "
                  f"{num(2 * r.noise_sd, '.4f')} are ties; seed-against-seed τ {num(r.seed_tau)}.",
              f"The ranking has formed by proxy epoch {r.formed_epoch if r.formed_epoch else '-'}."]
    if plot_url:
        lines += ["", f"![proxy against reference, τ per proxy epoch]({plot_url})"]
    return "\n".join(lines) + "\n"


def publish(study, report: AuditReport, storage: str | None) -> None:
    """Show a finished audit in optuna-dashboard: the plot and the JSON report as study artifacts
    (`audit.png`, `audit.json`), and a study note with the verdict, the main numbers and the plot."""
    store = artifact_store(storage)
    with tempfile.TemporaryDirectory(prefix="nas-audit-") as tmp:
        png = plot(report, Path(tmp) / "audit.png").read_bytes()
    png_id = upload_text(study, study, "audit.png", png, store, "image/png")
    upload_text(study, study, "audit.json", json.dumps(report.to_json(), indent=1), store, "application/json")
    optuna_dashboard.save_note(study, note_markdown(report, f"/artifacts/{study._study_id}/{png_id}"))


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


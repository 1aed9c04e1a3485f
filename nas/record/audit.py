"""What `nas audit` records: the summary it leaves on the audited study (`AuditSummary`, read by other
commands), and its own study `<study>.audit`, whose trials are the audit's jobs (one training run each).

A job trial is queued WAITING with its description in user attrs (`job`, `candidate`, `label`, `kind`,
`epochs`, `seed`), and told with its run (`fitness`, `mAP50`, ...). Long values stay out of the user attrs, so
optuna-dashboard's table of `<study>.audit` stays readable: a candidate's model YAML is a system attr of the
audit study, a job's per-epoch records a system attr of its trial (in the storage, where every worker reads them).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from nas.record.trial import as_float

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

SUMMARY_ATTR = "audit"  # study user attr holding the AuditSummary of the last finished audit
JOB_INTERRUPTED = "interrupted"  # job trial user attr: a Ctrl-C stopped it (queued again, not failed for good)
JOB_MODEL_ATTR = "nas:model_yaml:{candidate}"  # audit study system attr: the candidate's model YAML
JOB_HISTORY_ATTR = "nas:history"  # job trial system attr: its per-epoch records


@dataclass
class AuditSummary:
    """What other commands need from a finished audit (stored as the study user attr `audit`)."""

    tau: float | None
    tau_low: float | None
    tau_high: float | None
    rho: float | None
    tau_gflops: float | None
    noise_sd: float | None  # pooled seed standard deviation of fitness
    noise: float | None  # the fitness difference that is noise: 2 x noise_sd
    seed_tau: float | None
    n_candidates: int
    proxy_epochs: int
    reference_epochs: int
    seeds: int
    verdict: str
    finished_at: str = ""
    formed_epoch: int | None = None  # the proxy epoch from which tau per epoch stays near its last value

    @classmethod
    def from_report(cls, r: Any) -> AuditSummary:
        """The summary of a finished nas.audit.report.AuditReport (non-finite numbers stored as None)."""
        c, g = r.correlations["proxy"], r.correlations["GFLOPs"]
        return cls(tau=as_float(c.tau), tau_low=as_float(c.tau_low), tau_high=as_float(c.tau_high),
                   rho=as_float(c.rho), tau_gflops=as_float(g.tau), noise_sd=as_float(r.noise_sd),
                   noise=as_float(2 * r.noise_sd), seed_tau=as_float(r.seed_tau), n_candidates=r.n,
                   proxy_epochs=r.proxy_epochs, reference_epochs=r.reference_epochs, seeds=r.seeds,
                   verdict=r.verdict, finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   formed_epoch=r.formed_epoch)

    def to_attr(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_attr(cls, doc: Any) -> AuditSummary | None:
        if not isinstance(doc, dict):
            return None
        names = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in doc.items() if k in names})
        except TypeError:
            return None


def audit_summary(study: optuna.Study) -> AuditSummary | None:
    """The last finished audit of a study (noise sd, tau, verdict), or None when it has none."""
    return AuditSummary.from_attr(study.user_attrs.get(SUMMARY_ATTR))


def write_audit_summary(study: optuna.Study, aux: optuna.Study, summary: AuditSummary) -> None:
    """Leave a finished audit's summary on the audited study and on the audit's own study."""
    study.set_user_attr(SUMMARY_ATTR, summary.to_attr())
    aux.set_user_attr("summary", summary.to_attr())


# ------------------------------------------------------------------------------------ the audit's study


def write_audit_of(aux: optuna.Study, study_name: str, selection: dict[str, Any] | None = None) -> None:
    """Name the audited study on the audit's study and, for trial candidates, keep which were chosen
    ({"options": ..., "keys": [...]}: a rerun with the same options audits the same candidates)."""
    aux.set_user_attr("audit_of", study_name)
    if selection is not None:
        aux.set_user_attr("selection", selection)


def read_selection(aux: optuna.Study) -> dict[str, Any] | None:
    """The candidate selection an earlier run of the audit stored, or None."""
    stored = aux.user_attrs.get("selection")
    return stored if isinstance(stored, dict) else None


def job_of(t: FrozenTrial | optuna.Trial) -> dict[str, Any]:
    """A job trial's description and, once told, its run: a copy of its user attrs ({} for a non-job trial)."""
    return dict(t.user_attrs)


def job_key(t: FrozenTrial | optuna.Trial) -> str | None:
    """The job a trial of the audit's study runs (`candidate|kind|e<epochs>|s<seed>`); None for other trials."""
    key = t.user_attrs.get("job")
    return key if isinstance(key, str) else None


def failed_for_good(t: FrozenTrial) -> bool:
    """A failed job trial whose candidate failed (a fail_reason, not a Ctrl-C): it is not queued again."""
    return bool(t.user_attrs.get("fail_reason")) and not t.user_attrs.get(JOB_INTERRUPTED)


def job_run(t: FrozenTrial) -> dict[str, Any] | None:
    """The run of a complete job trial (fitness, history, times, ...), None when it carries none."""
    if job_key(t) is None or "fitness" not in t.user_attrs:
        return None
    run = job_of(t)
    run.setdefault("history", t.system_attrs.get(JOB_HISTORY_ATTR, []))  # older audits: a user attr
    return run


def enqueue_job(aux: optuna.Study, job: dict[str, Any], model_yaml: str) -> None:
    """Queue a job ({"job", "candidate", "label", "kind", "epochs", "seed"}) with its candidate's model YAML."""
    key = JOB_MODEL_ATTR.format(candidate=job["candidate"])
    if aux._storage.get_study_system_attrs(aux._study_id).get(key) != model_yaml:
        aux._storage.set_study_system_attr(aux._study_id, key, model_yaml)
    aux.enqueue_trial({}, user_attrs=dict(job), skip_if_exists=False)


def job_model_yaml(aux: optuna.Study, job: dict[str, Any]) -> str:
    """The model YAML a job trains (jobs queued by earlier versions carry it in their user attrs)."""
    stored = aux._storage.get_study_system_attrs(aux._study_id)
    return job.get("model_yaml") or stored[JOB_MODEL_ATTR.format(candidate=job["candidate"])]


def skip_job(trial: optuna.Trial, why: str) -> None:
    """Say why a claimed job trial is not run (an older audit's job, a duplicate)."""
    trial.set_user_attr("skipped", why)


def interrupt_job(trial: optuna.Trial) -> None:
    """Mark a job trial a Ctrl-C stopped (it is queued again on the next start)."""
    trial.set_user_attr(JOB_INTERRUPTED, True)


def write_job_run(trial: optuna.Trial, run: dict[str, Any], fail_reason: str | None = None) -> None:
    """Store a finished job's run on its trial: the history as a system attr, the rest (`status` aside) as user
    attrs, and `fail_reason` when the run failed."""
    trial.storage.set_trial_system_attr(trial._trial_id, JOB_HISTORY_ATTR, run["history"])
    for k, v in run.items():
        if k not in ("status", "history"):
            trial.set_user_attr(k, v)
    if fail_reason is not None:
        trial.set_user_attr("fail_reason", fail_reason)


__all__ = ["JOB_HISTORY_ATTR", "JOB_INTERRUPTED", "JOB_MODEL_ATTR", "SUMMARY_ATTR", "AuditSummary", "audit_summary",
           "enqueue_job", "failed_for_good", "interrupt_job", "job_key", "job_model_yaml", "job_of", "job_run",
           "read_selection", "skip_job", "write_audit_of", "write_audit_summary", "write_job_run"]

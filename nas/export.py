"""export-best: a trial's model YAML, rebuilt and recounted before it is written (the round-trip check)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from nas import __version__
from nas.cost import count
from nas.errors import NasError
from nas.files import check_output, write_text
from nas.front.pareto import best, knee, pareto_front, select_trial, tied_with
from nas.front.report import proxy_text
from nas.latency.study import stored_table
from nas.model import build_model
from nas.onnx_export import OnnxReport, build_seeded, check_target, default_opset, export_onnx
from nas.record import (
    AuditSummary,
    TrialRecord,
    audit_summary,
    describe,
    missing_artifact,
    read,
    read_model_yaml,
    read_study,
)
from nas.train.memory import check_export_memory

if TYPE_CHECKING:
    import optuna
    from optuna.artifacts import FileSystemArtifactStore
    from optuna.trial import FrozenTrial


GFLOPS_RTOL = 1e-6
GFLOPS_STORED_ABS = 0.5e-6  # the study stores GFLOPs rounded to 6 decimals: half a unit of the 6th is rounding


@dataclass
class Export:
    """What export-best wrote."""

    path: Path
    trial: int
    fitness: float | None
    gflops: float
    params: int
    imgsz: tuple[int, int]
    text: str
    notes: list[str] = field(default_factory=list)  # what the user should know about the pick (knee, ties)
    onnx: OnnxReport | None = None  # with --onnx: the checked ONNX export of the same model
    latency_ms: float | None = None  # predicted by the study's latency table (None: the study has none)
    measured_latency_ms: float | None = None  # measured after training

    def to_dict(self, study: str) -> dict[str, Any]:
        """export-best --json's document."""
        return {"path": str(self.path), "study": study, "trial": self.trial, "fitness": self.fitness,
                "gflops": round(self.gflops, 6), "latency_ms": self.latency_ms,
                "measured_latency_ms": self.measured_latency_ms, "params": self.params, "imgsz": list(self.imgsz),
                "notes": self.notes, "onnx": None if self.onnx is None else self.onnx.to_dict()}


@dataclass
class PickNotes:
    """What export-best says about its pick: how it was chosen and whether the audit calls it a tie."""

    pick: str  # 'knee', 'fitness', 'max-gflops' or 'trial'
    knee_is_best: bool | None = None  # for --pick knee: the knee is also the best-fitness trial
    best: int | None = None  # the best-fitness front trial
    ties: list[int] | None = None  # front trials within the audit's noise of the pick; None: noise unknown
    audit: AuditSummary | None = None

    def lines(self, number: int) -> list[str]:
        """Plain sentences for the terminal and the YAML header."""
        out = []
        if self.pick == "knee":
            out.append(f"pick knee: trial {number} is the knee of the front and also its best-fitness trial"
                       if self.knee_is_best else
                       f"pick knee: trial {number} is the knee of the front; the best fitness is trial {self.best}")
        if self.ties is None:
            out.append("ties: unknown until `nas audit` measures the seed noise")
        elif self.ties and self.audit is not None:
            which = ("trials " if len(self.ties) > 1 else "trial ") + ", ".join(map(str, self.ties))
            out.append(f"tie: its fitness is within {self.audit.noise:.4f} of front {which}; `nas audit` "
                       "measured that difference as noise, so the scores cannot tell them apart")
        elif self.audit is not None and self.audit.noise is not None:
            out.append(f"no tie: no other front trial scores within {self.audit.noise:.4f} (the audit's noise)")
        return out


def trial_model_yaml(
    study: optuna.Study, t: FrozenTrial, store: FileSystemArtifactStore | None = None
) -> str:
    """The trial's rendered model YAML (its artifact, or the `model_yaml` user attr of older studies)."""
    text = read_model_yaml(study, t, store)
    if text:
        return text
    raise NasError(missing_artifact(study, t, "model YAML (artifact model-trial<N>.yaml)", store))


def study_imgsz(study: optuna.Study) -> tuple[int, int]:
    """The (h, w) the study counted GFLOPs at."""
    imgsz = read_study(study).imgsz
    if imgsz is not None:
        return imgsz
    raise NasError(
        f"study {study.study_name!r} has no imgsz user attr ([h, w]); it was not created by `nas search`"
    )


def round_trip(study: optuna.Study, t: FrozenTrial, text: str) -> tuple[dict[str, Any], int, float]:
    """Rebuild the YAML on the meta device and recount it; NasError unless it matches the trial's record.

    Returns (model dict, params, GFLOPs).
    """
    where = f"trial {t.number} of study {study.study_name!r}"
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise NasError(
            f"{where}: the stored model YAML does not parse ({e}); the record is damaged"
        ) from None
    if not isinstance(cfg, dict):
        raise NasError(f"{where}: the stored model YAML is not a mapping; the record is damaged")
    cfg.setdefault("_source", f"{where} (stored model YAML)")
    model = build_model(cfg, device="meta")
    imgsz = study_imgsz(study)
    cost = count(model, imgsz=imgsz)
    params, gflops = int(cost.params), float(cost.gflops)
    r = read(t)
    want_params = r.params
    want_gflops = r.gflops if r.gflops is not None else r.objective_gflops
    if want_params is None or want_gflops is None:
        raise NasError(
            f"{where} records no params/gflops to check the rebuilt model against; refusing to export"
        )
    ok_params = params == int(want_params)
    ok_gflops = abs(gflops - float(want_gflops)) <= GFLOPS_STORED_ABS + GFLOPS_RTOL * abs(float(want_gflops))
    if not (ok_params and ok_gflops):
        raise NasError(
            f"{where}: its stored model YAML rebuilds to {params} params / {gflops:.6f} GFLOPs at "
            f"{imgsz[0]}x{imgsz[1]} but the trial recorded {int(want_params)} / {float(want_gflops):.6f}; "
            "the YAML was changed or built by another nas version, so it is not what was scored; "
            "refusing to export"
        )
    cfg.pop("_source", None)
    return cfg, params, gflops


def pick_notes(study: optuna.Study, t: FrozenTrial, *, trial: int | None = None, max_gflops: float | None = None,
               pick: str | None = None) -> PickNotes:
    """How the exported trial was picked and which front trials tie with it within the audit's noise."""
    front = pareto_front(study)
    audit = audit_summary(study)
    how = "trial" if trial is not None else "max-gflops" if max_gflops is not None else pick or "fitness"
    notes = PickNotes(how, audit=audit, best=best(front).number if front else None)
    if how == "knee" and front:
        notes.knee_is_best = knee(front).number == notes.best
    noise = None if audit is None else audit.noise
    in_front = any(f.number == t.number for f in front)
    notes.ties = tied_with(front if in_front else [*front, t], t.number, noise)
    return notes


def header(study: optuna.Study, t: FrozenTrial, params: int, gflops: float, out: Path,
           notes: PickNotes | None = None, checkpoint: Path | None = None) -> str:
    """The comment lines heading an exported YAML (`checkpoint`: the best.pt written beside it, if any)."""
    r, sr = read(t), read_study(study)
    h, w = study_imgsz(study)

    def num(value: float | None) -> str:
        return "-" if value is None else f"{float(value):.6f}"

    fitness = r.objective_fitness
    name = out.name
    audit = None if notes is None else notes.audit
    lines = [
        "# nas export-best: a YOLOv5 model YAML (ultralytics v7.0 format) found by architecture search",
        f"# study: {study.study_name}",
        f"# trial: {t.number}",
        f"# choices: {describe(r, sr.points)}",
        f"# space_hash: {sr.space_hash or '-'}",
        f"# fitness: {'-' if fitness is None else f'{fitness:.6f}'}",
        f"# mAP50: {num(r.mAP50)}",
        f"# mAP50-95: {num(r.mAP50_95)}",
        f"# GFLOPs: {gflops:.6f}",
        *([f"# latency: {latency}"] if (latency := latency_text(study, r)) else []),
        f"# params: {params}",
        f"# imgsz: {h}x{w}",
        f"# proxy behind the scores: {proxy_text(sr.proxy if isinstance(sr.proxy, dict) else None)}",
    ]
    if audit is not None:
        tau = "-" if audit.tau is None else f"{audit.tau:.2f}"
        noise = "unknown" if audit.noise is None else f"{audit.noise:.4f}"
        lines.append(f"# audit: proxy vs {audit.reference_epochs}-epoch reference Kendall tau {tau} "
                     f"({audit.n_candidates} candidates); fitness noise {noise}")
    lines += [f"# {line}" for line in (notes.lines(t.number) if notes is not None else [])]
    lines += [
        f"# nas_version: {sr.nas_version or '-'} (exported by nas {__version__})",
        f"# train: {train_line(name, max(h, w), checkpoint)}",
    ]
    return "\n".join(lines) + "\n"


def latency_text(study: optuna.Study, r: TrialRecord) -> str | None:
    """'68.2 ms predicted, 68.5 ms measured (torch, 1 thread, cpu)'; None without latency. Where it was timed
    comes from the trial's own measurement, else from the study's table."""
    if r.latency_ms is None:
        return None
    m = r.measured_latency or {}
    if r.measured_latency_ms is not None and {"runtime", "threads", "device"} <= set(m):
        threads = int(m["threads"])
        where = f" ({m['runtime']}, {threads} thread{'s' if threads != 1 else ''}, {m['device']})"
        measured = f", {r.measured_latency_ms:.1f} ms measured"
    else:
        table = stored_table(study)
        where, measured = ("" if table is None else f" ({table.describe()})"), ""
    axis = "; the front's cost axis" if read_study(study).objective == "latency" else ""
    return f"{r.latency_ms:.1f} ms predicted{measured}{where}{axis}"


def train_line(name: str, img: int, checkpoint: Path | None = None) -> str:
    """How to train the exported YAML: from scratch, or from the best.pt written beside it (stock YOLOv5 v7.0
    under torch >= 2.6 loads a checkpoint only with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1)."""
    if checkpoint is None:
        return (f"nas evaluate {name} | in a YOLOv5 checkout: python -m nas.yolov5_register train.py --cfg {name} "
                f"--data DATA.yaml --weights '' --img {img}")
    return (f"nas evaluate {name} --weights {checkpoint.name} | in a YOLOv5 checkout: "
            f"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 python -m nas.yolov5_register train.py --cfg {name} "
            f"--data DATA.yaml --weights {checkpoint.name} --img {img}")


def export_best(
    study: optuna.Study,
    out: str | Path,
    *,
    trial: int | None = None,
    max_gflops: float | None = None,
    pick: str | None = None,
    store: FileSystemArtifactStore | None = None,
    onnx: str | Path | None = None,
    onnx_opset: int | None = None,
    onnx_exporter: str = "torchscript",
    checkpoint: Path | None = None,
) -> Export:
    """Choose a trial, check that its YAML rebuilds what was scored, and write it with a comment header.

    With `onnx`, the same model (built on the CPU, seeded weights) is also exported to that path at the study's
    imgsz and checked in onnxruntime first; a failed check writes neither file."""
    out = check_output(out, "--out")
    onnx_path = None
    if onnx is not None:  # before any work: the path can be written and the packages are there
        onnx_path = check_target(onnx, onnx_exporter, other=out)
    t = select_trial(study, trial=trial, max_gflops=max_gflops, pick=pick)
    text = trial_model_yaml(study, t, store)
    cfg, params, gflops = round_trip(study, t, text)
    notes = pick_notes(study, t, trial=trial, max_gflops=max_gflops, pick=pick)
    body = header(study, t, params, gflops, out, notes, checkpoint) + text.rstrip("\n") + "\n"
    imgsz = study_imgsz(study)
    report = None
    if onnx_path is not None:
        report = _export_onnx(study, t, cfg, params, imgsz, onnx_path, onnx_opset, onnx_exporter)
    write_text(out, body, "--out")
    r = read(t)
    return Export(out, t.number, r.objective_fitness, gflops, params, imgsz, body, notes.lines(t.number),
                  report, r.latency_ms, r.measured_latency_ms)


def _export_onnx(study: optuna.Study, t: FrozenTrial, cfg: dict[str, Any], params: int, imgsz: tuple[int, int],
                 path: Path, opset: int | None, exporter: str) -> OnnxReport:
    """The round-tripped YAML built for real (seeded weights), its params checked again, exported and checked."""
    where = f"trial {t.number} of study {study.study_name!r}"
    check_export_memory(cfg, cfg.get("nc"), imgsz, what=where, option="--onnx")
    model = build_seeded({**cfg, "_source": where})
    real = sum(p.numel() for p in model.parameters())
    if real != params:
        raise NasError(f"{where}: built on the CPU the model YAML has {real} params, on the meta device {params}; "
                       "refusing to export an ONNX file of another model")
    return export_onnx(model, imgsz, path, opset=default_opset(exporter) if opset is None else opset,
                       dynamo=exporter == "dynamo")

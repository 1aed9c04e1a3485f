"""Checkpoints for an edited architecture: a base checkpoint transferred into a model YAML and written in YOLOv5
v7.0's format, for `nas transfer` (any hand-edited YAML) and `nas export-best --weights` (the chosen trial).

The model is built seeded (new blocks and replaced layers keep that init), the base's layers are copied into
the layers that now play their role (nas.weights.transfer), and the result is written as train.py's final
`best.pt`, so stock YOLOv5 `train.py --cfg edited.yaml --weights edited.pt` takes every tensor by name and shape.
The study keeps no trained weights (only YAMLs and histories), so export-best's best.pt is this transfer too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from nas.errors import NasError
from nas.export import Export, export_best, round_trip, trial_model_yaml
from nas.files import check_writable, write_bytes
from nas.front.pareto import select_trial
from nas.model import load_cfg
from nas.onnx_export import build_seeded
from nas.record import read_study
from nas.weights.base import Base, load_base, transfer_attr
from nas.weights.rule import RuleResult, yolov5_rule
from nas.weights.transfer import TransferReport, transfer
from nas.weights.writer import checkpoint_bytes

if TYPE_CHECKING:
    import optuna
    from optuna.artifacts import FileSystemArtifactStore



@dataclass
class WrittenCheckpoint:
    """A checkpoint nas wrote: where, from which base, what the transfer did and what YOLOv5's rule would do."""

    path: Path
    size: int
    base: Base
    cfg_name: str
    report: TransferReport
    rule: RuleResult

    def rule_line(self) -> str:
        """What YOLOv5 v7.0 train.py's own rule would have made of the same pair."""
        pct = math.floor(self.rule.share * 1000) / 10
        line = (f"YOLOv5's rule on the same pair (train.py --cfg {self.cfg_name} --weights {self.base.name}): "
                f"Transferred {self.rule.kept}/{self.rule.total} items, {pct:.1f}% of the parameters in the layer "
                f"that plays their role")
        if self.rule.misplaced:
            line += f", {self.rule.misplaced} tensors loaded into a layer of another role"
        return line

    def wrote_line(self) -> str:
        return (f"wrote {self.path} ({self.size:,} bytes): a YOLOv5 v7.0 checkpoint of {self.cfg_name}, nc "
                f"{self.report.nc}; stock train.py --cfg {self.cfg_name} --weights {self.path.name} takes every "
                f"tensor but Detect's anchors, which it always keeps from the YAML with --cfg")

    def lines(self) -> list[str]:
        return [self.report.line(self.base.name), self.rule_line(), self.wrote_line()]

    def to_dict(self) -> dict[str, Any]:
        """`nas transfer --json`'s document (and export-best --json's `checkpoint`)."""
        return {"path": str(self.path), "bytes": self.size, "weights": str(self.base.path),
                "sha256": self.base.sha256, "cfg": self.cfg_name, "transfer": self.report.to_dict(),
                "yolov5_rule": self.rule._asdict()}


def _names(base: Base, nc: int) -> list[str]:
    """The checkpoint's class names when nc is the base's, else YOLOv5's defaults (class0, class1, ...)."""
    names = base.checkpoint.names
    return list(names) if names is not None and len(names) == nc else [f"class{i}" for i in range(nc)]


def _transferred(base: Base, cfg: dict, nc: int | None) -> tuple[torch.nn.Module, TransferReport, RuleResult]:
    """The edited model built with seed 0, the base transferred into it; YOLOv5's rule on the same pair."""
    _check_width(base, cfg)
    model = build_seeded(cfg, nc=nc)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    report = transfer(base.checkpoint.state_dict, base.cfg, model, base_nc=base.nc)
    rule = yolov5_rule(base.checkpoint.state_dict, fresh, report.layer_map)
    return model, report, rule


def _check_width(base: Base, cfg: dict) -> None:
    """NasError when the edited YAML scales channels unlike the checkpoint: across widths no weight keeps its
    shape, so the transfer would copy almost nothing (only BatchNorm step counters) while looking like a result."""
    theirs, ours = base.cfg.get("width_multiple", 1.0), cfg.get("width_multiple", 1.0)
    if not math.isclose(float(theirs), float(ours)):
        where = cfg.get("_source") or "the edited model YAML"
        raise NasError(f"{where}: width_multiple {ours} but {base.name}'s model is width_multiple {theirs}; no "
                       f"weight keeps its shape across widths, so nothing would transfer: set width_multiple: "
                       f"{theirs} (and depth_multiple: {base.cfg.get('depth_multiple', 1.0)}) in the YAML, or give "
                       f"a checkpoint of width {ours}")


def _target(out: str | Path, base: Base) -> Path:
    path = check_writable(out, "--out")
    if path.exists() and path.resolve() == base.path.resolve():
        raise NasError(f"--out {path} is the --weights file itself; nas never writes over the base checkpoint: "
                       f"choose another path")
    return path


def _nas_meta(base: Base, report: TransferReport, **extra: Any) -> dict[str, Any]:
    return {"base": {"name": base.name, "sha256": base.sha256}, "transfer": transfer_attr(report), **extra}


def transfer_checkpoint(weights: str | Path, cfg: str | Path, out: str | Path,
                        nc: int | None = None) -> WrittenCheckpoint:
    """`nas transfer`: read `weights`, align its model YAML with the edited YAML `cfg`, copy every surviving
    layer to its new index and write the edited model as a YOLOv5 v7.0 checkpoint at `out`. NasError (nothing
    written) for a bad checkpoint, a YAML that is not an edit of its model, or an unwritable `out`."""
    base = load_base(weights)
    path = _target(out, base)
    edited = {**load_cfg(cfg), "_source": str(cfg)}
    model, report, rule = _transferred(base, edited, nc)
    data = checkpoint_bytes(model, _names(base, int(model.nc)), nas=_nas_meta(base, report, cfg=str(cfg)))
    write_bytes(path, data, "--out")
    return WrittenCheckpoint(path, len(data), base, Path(str(cfg)).name, report, rule)


def study_base(study: optuna.Study, weights: str | Path) -> tuple[Base, str | None]:
    """The checkpoint for export-best --weights; NasError when the study fine-tuned from a file with another
    sha256. Also a note when the study searched from scratch (its scores say nothing of fine-tuning)."""
    base = load_base(weights)
    recorded = read_study(study).weights
    if recorded is None:
        return base, (f"weights: study {study.study_name!r} searched from scratch; {base.name} is transferred into "
                      f"the exported architecture, but the scores were not measured fine-tuning from it")
    if recorded.get("sha256") != base.sha256:
        raise NasError(f"--weights {base.path}: sha256 {base.sha256[:12]}… is not the checkpoint study "
                       f"{study.study_name!r} fine-tuned from ({recorded.get('name')}, sha256 "
                       f"{str(recorded.get('sha256'))[:12]}…); give that file, so best.pt starts from what was "
                       f"scored")
    return base, None


def export_best_weights(study: optuna.Study, out: str | Path, weights: str | Path, *,
                        store: FileSystemArtifactStore | None = None, **pick: Any) -> tuple[Export,
                                                                                         WrittenCheckpoint]:
    """export-best --weights: the chosen trial's YAML (nas.export.export_best, its train line naming the
    checkpoint) and, beside it with the suffix .pt, the base transferred into that architecture. Everything
    is checked (checkpoint, sha256, both paths, the round trip, the alignment) before either file is written."""
    base, note = study_base(study, weights)
    yaml_out = Path(out)
    pt = _target(yaml_out.with_suffix(".pt"), base)
    if pt == yaml_out:
        raise NasError(f"--out {yaml_out}: name the model YAML with a .yaml suffix; best.pt is written beside it")
    choose = {k: pick.get(k) for k in ("trial", "max_gflops", "pick")}
    t = select_trial(study, **choose)
    cfg, _, _ = round_trip(study, t, trial_model_yaml(study, t, store))
    model, report, rule = _transferred(base, {**cfg, "_source": f"trial {t.number}'s model YAML"}, None)
    data = checkpoint_bytes(model, _names(base, int(model.nc)),
                            nas=_nas_meta(base, report, study=study.study_name, trial=t.number))
    result = export_best(study, yaml_out, store=store, checkpoint=pt, **pick)
    if result.trial != t.number:  # select_trial is deterministic; a changed study between the two is a bug
        raise RuntimeError(f"export-best picked trial {result.trial}, the checkpoint was made for {t.number}")
    write_bytes(pt, data, "--out")
    if note:
        result.notes.append(note)
    return result, WrittenCheckpoint(pt, len(data), base, yaml_out.name, report, rule)


__all__ = ["WrittenCheckpoint", "export_best_weights", "study_base", "transfer_checkpoint"]

"""A pretrained checkpoint as the starting point of `nas search`, `nas evaluate` and `nas audit` (`--weights`).

`load_base` reads the checkpoint (safely, nas.weights.checkpoint) and keeps what the commands need; `fit_space`
checks that a search space's base is the checkpoint's architecture and narrows its width and depth choices to
the checkpoint's; `Initializer` transfers the checkpoint into each freshly built model right before its proxy
training (nas.train's `init` hook) and keeps the report. The proxy then fine-tunes it with the same
hyperparameters as from scratch, as YOLOv5 v7.0's train.py does with `--weights` (docs/CONTRACTS.md), for
FINETUNE_PROXY's epochs and image size unless --epochs/--imgsz are given (`proxy_settings`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nas.errors import NasError
from nas.model import build_model, load_cfg
from nas.weights.checkpoint import Checkpoint, read_checkpoint
from nas.weights.transfer import TransferReport, transfer


@dataclass(frozen=True)
class FinetuneProxy:
    """The proxy's defaults when every candidate starts from a checkpoint, and what they were chosen on."""

    epochs: int
    imgsz: int
    hyp: tuple[tuple[str, float], ...]  # overrides of nas.train.Hyp while fine-tuning
    chosen_on: str


FINETUNE_PROXY = FinetuneProxy(epochs=2, imgsz=128, hyp=(("lr0", 0.01), ("warmup_epochs", 0.0)), chosen_on=(
    "synthetic data (bench/bench_finetune.py: yolov5n pretrained on one synthetic task, fine-tuned on another; "
    "docs/FIDELITY.md), not on real images"))


def finetune_hyp(weights: Any) -> dict[str, float] | None:
    """The trainer's hyp overrides when fine-tuning from `weights` (a path or a Base), None from scratch."""
    return (dict(FINETUNE_PROXY.hyp) or None) if weights is not None else None


def proxy_settings(weights: str | None, epochs: int | None, imgsz: int | None, scratch_epochs: int,
                   scratch_imgsz: int) -> tuple[int, int]:
    """--epochs and --imgsz as given; one left out is FINETUNE_PROXY's with --weights, the scratch default without."""
    if weights is None:
        return (scratch_epochs if epochs is None else epochs), (scratch_imgsz if imgsz is None else imgsz)
    return (FINETUNE_PROXY.epochs if epochs is None else epochs), (FINETUNE_PROXY.imgsz if imgsz is None else imgsz)


def proxy_line(epochs: int, imgsz: int, data: str | None) -> str:
    """What the header says of a fine-tuning proxy's schedule: its defaults' origin, plainly for real images."""
    default = (epochs, imgsz) == (FINETUNE_PROXY.epochs, FINETUNE_PROXY.imgsz)
    hyp = ", ".join(f"{k} {v:g}" for k, v in FINETUNE_PROXY.hyp)
    line = (f"fine-tuning proxy: {epochs} epoch{'' if epochs == 1 else 's'} at {imgsz} px"
            + (f" ({hyp})" if hyp else "")
            + (f", the defaults chosen on {FINETUNE_PROXY.chosen_on}" if default else " (as given)"))
    if data and imgsz == FINETUNE_PROXY.imgsz:
        line += f"; on real images {imgsz} px may be too small to rank by: pass --imgsz 256 or 320 to check"
    return line


@dataclass
class Base:
    """A checkpoint that holds its model: the weights, the model YAML and where they came from."""

    checkpoint: Checkpoint

    @property
    def path(self) -> Path:
        return self.checkpoint.path

    @property
    def name(self) -> str:
        return self.checkpoint.path.name

    @property
    def sha256(self) -> str:
        return self.checkpoint.sha256

    @property
    def cfg(self) -> dict:
        return self.checkpoint.yaml or {}

    @property
    def nc(self) -> int:
        return int(self.checkpoint.nc or self.cfg["nc"])

    @property
    def width_multiple(self) -> float:
        return float(self.cfg["width_multiple"])

    @property
    def depth_multiple(self) -> float:
        return float(self.cfg["depth_multiple"])

    def short(self) -> str:
        """`yolov5n.pt (sha256 1234abcd…)`."""
        return f"{self.name} (sha256 {self.sha256[:8]}…)"

    def to_attr(self) -> dict[str, Any]:
        """What a study records of its checkpoint (the study user attr `weights`)."""
        return {"name": self.name, "path": str(self.path.resolve()), "sha256": self.sha256,
                "format": self.checkpoint.format, "nc": self.nc, "width_multiple": self.width_multiple,
                "depth_multiple": self.depth_multiple}


def load_base(path: str | Path, option: str = "--weights") -> Base:
    """Read a checkpoint for fine-tuning; NasError when it is not one or holds no model YAML (a plain state dict
    says nothing of the architecture its tensors belong to)."""
    ckpt = read_checkpoint(path)
    needed = {"backbone", "head", "width_multiple", "depth_multiple"}
    if not isinstance(ckpt.yaml, dict) or not needed <= set(ckpt.yaml):
        what = "a plain state dict" if ckpt.format == "state_dict" else "a model"
        raise NasError(f"{option} {ckpt.path}: {what} without its model YAML, so nas cannot tell which layer each "
                       f"tensor belongs to; use a checkpoint that holds its model, as YOLOv5's train.py saves it")
    try:
        cfg = load_cfg({**ckpt.yaml, "_source": f"{ckpt.path}'s model YAML"})
    except NasError as e:
        raise NasError(f"{option} {ckpt.path}: its model YAML is not a YOLOv5 model YAML ({e})") from None
    cfg.pop("_source", None)
    ckpt.yaml = cfg
    return Base(ckpt)


def _rows(cfg: dict, nc: int, source: str) -> list:
    """The layer rows a model YAML builds (module, sources, repeats after depth, arguments after width)."""
    model = build_model({**cfg, "nc": nc, "_source": source}, nc=nc, device="meta")
    rows = []
    for info in model.layers_info:
        args = list(info.args)
        if info.module == "Detect":  # nc aside; the anchors' count per level, not their values
            args = [[len(a) for a in args[1]] if isinstance(args[1], list) else args[1], *args[2:]]
        rows.append((info.module, info.f, info.n, args))
    return rows


def same_architecture(space_cfg: dict, base: Base, what: str) -> None:
    """NasError naming the first layer where `space_cfg` (at the checkpoint's multiples) differs from the
    checkpoint's model (nc aside)."""
    at = {**space_cfg, "width_multiple": base.width_multiple, "depth_multiple": base.depth_multiple}
    mine = _rows(at, base.nc, what)
    theirs = _rows(base.cfg, base.nc, f"{base.path}'s model YAML")
    for i, (a, b) in enumerate(zip(mine, theirs, strict=False)):
        if a != b:
            raise NasError(f"--weights {base.path}: not the architecture of {what}: layer {i} is "
                           f"{_row_text(b)} in the checkpoint but {_row_text(a)} in the base (at the checkpoint's "
                           f"width {base.width_multiple:g} and depth {base.depth_multiple:g}); use a checkpoint of "
                           f"that model or a space whose base is the checkpoint's YAML")
    if len(mine) != len(theirs):
        raise NasError(f"--weights {base.path}: not the architecture of {what}: the checkpoint has {len(theirs)} "
                       f"layers, the base {len(mine)}")


def _row_text(row: tuple) -> str:
    module, f, n, args = row
    return f"[{f}, {n}, {module}, {args}]"


def fit_space(space, base: Base):
    """The space narrowed to the checkpoint's width and depth; NasError when its base is another architecture or
    its choices do not hold the checkpoint's multiples. The space hash stays the original's."""
    same_architecture(space.base_cfg, base, f"the space's base {space.base} ({space.path})")
    for key, value, choices in (("width_multiple", base.width_multiple, space.width_multiple),
                                ("depth_multiple", base.depth_multiple, space.depth_multiple)):
        if not any(abs(value - c) < 1e-9 for c in choices):
            listed = ", ".join(f"{c:g}" for c in choices)
            raise NasError(f"--weights {base.path}: the checkpoint's {key} is {value:g}, and {space.path} offers "
                           f"{listed}; fine-tuning keeps the checkpoint's multiples: add {value:g} to the space's "
                           f"{key} or use a checkpoint at one of them")
    return dataclasses.replace(space, width_multiple=(base.width_multiple,), depth_multiple=(base.depth_multiple,))


def header_line(base: Base, nc: int | None = None, narrowed: bool = True) -> str:
    """The header line of a fine-tuning run: checkpoint, multiples and, when the data's nc differs, what
    happens to Detect's class rows."""
    line = f"weights: {base.short()}, fine-tuning"
    if narrowed:
        line += f"; width {base.width_multiple:g} depth {base.depth_multiple:g} from the checkpoint"
    if nc is not None and nc != base.nc:
        line += (f"; nc {nc} (the checkpoint has {base.nc}): Detect's class rows start at init, its box and "
                 f"objectness rows from the checkpoint")
    return line


def transfer_attr(report: TransferReport) -> dict[str, Any]:
    """How much of the checkpoint a candidate started from (the trial user attr `transfer`)."""
    return {"share": round(report.share, 6), "params": report.transferred_params, "base_params": report.base_params,
            "tensors": report.transferred_tensors, "base_tensors": report.base_tensors,
            "new": [f"{d['module']} at {d['index']}" for d in report.new],
            "replaced": [f"{d['base_module']} at {d['base_index']} by {d['module']}" for d in report.replaced],
            "skipped_params": sum(int(d["params"]) for d in report.skipped)}


def transfer_text(attr: dict | None) -> str:
    """A trial's `transfer` attr in a few words: `from weights 100.0% (349/349 tensors), new: SGE at 24`."""
    if not isinstance(attr, dict) or "share" not in attr:
        return ""
    pct = math.floor(float(attr["share"]) * 1000) / 10
    new = ", ".join([*attr.get("new", []), *attr.get("replaced", [])]) or "none"
    return f"from weights {pct:.1f}% ({attr.get('tensors')}/{attr.get('base_tensors')} tensors), new: {new}"


class Initializer:
    """The trainer's `init` hook: transfers the checkpoint into the freshly built model, before training.

    `index_map` (nas.space.render_with_map's) places every base layer of a rendered candidate; without it the
    two YAMLs are aligned (a hand-edited YAML). The last report is kept in `.report`."""

    def __init__(self, base: Base, index_map: dict[int, int] | None = None):
        self.base, self.index_map = base, index_map
        self.report: TransferReport | None = None

    def __call__(self, model: torch.nn.Module) -> TransferReport:
        self.report = transfer(self.base.checkpoint.state_dict, self.base.cfg, model, index_map=self.index_map,
                               base_nc=self.base.nc)
        return self.report


__all__ = ["FINETUNE_PROXY", "Base", "FinetuneProxy", "Initializer", "finetune_hyp", "fit_space", "header_line",
           "load_base", "proxy_line", "proxy_settings", "same_architecture", "transfer_attr", "transfer_text"]

"""What a search is given and gives back, as plain data: `SearchOptions` (the CLI fills it; an extra worker
process gets it as one JSON document), the display's `Progress` hooks, the run's `Summary`, the model YAML
`Header` the command hands in, and `parse_duration` (--timeout).
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from nas.budget import Budget
from nas.data.resolve import SYNTHETIC_TRAIN, SYNTHETIC_VAL
from nas.errors import NasError
from nas.latency.study import LatencySettings
from nas.record import TrialRecord
from nas.weights.base import finetune_hyp

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
    early_stop: bool = True  # successive halving at rungs (nas.search.rungs); off: every candidate trains to the end
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

    def to_json(self) -> str:
        """The options as one JSON document, for an extra worker process (`from_json`). The checkpoint (`base`)
        and `run_id` stay behind: the worker reads the one again and is its own process for the other."""
        doc = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("base", "run_id")}
        doc.update(budget=self.budget.to_attr(), latency=asdict(self.latency))
        return json.dumps(doc)

    @classmethod
    def from_json(cls, text: str) -> SearchOptions:
        """Options written by `to_json` (a fresh `run_id`; `base` is read again by prepare())."""
        doc = json.loads(text)
        doc.update(budget=Budget.from_attr(doc["budget"]), latency=LatencySettings(**doc["latency"]))
        return cls(**doc)


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


__all__ = ["Header", "Progress", "SearchOptions", "Summary", "parse_duration"]

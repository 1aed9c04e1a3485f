"""Early stopping of proxy runs clearly behind finished trials that cost no more.

Multi-objective studies cannot prune in Optuna, so this replaces a pruner; intermediate values live in the
trial record's `history`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from nas.pareto import scored_trials
from nas.record import read, read_history

if TYPE_CHECKING:
    import optuna
    from optuna.artifacts import FileSystemArtifactStore


class EarlyStop:
    """Stops a proxy run whose fitness is clearly behind finished trials that cost no more.

    At epoch e (from half of the run on) it compares the candidate's fitness with the fitness at epoch e of
    finished, trained trials whose GFLOPs are at most its own: if the best of them is above `floor` and more
    than 1/ratio times better, the candidate is unlikely to reach the Pareto front and its run stops. A
    stopped trial keeps its best score so far, which that cheaper reference normally dominates.
    """

    def __init__(self, study: optuna.Study, gflops: float, ratio: float, epochs: int, floor: float = 0.02,
                 min_references: int = 2, store: FileSystemArtifactStore | None = None):
        self.study = study
        self.gflops = gflops
        self.ratio = ratio
        self.floor = floor
        self.first_epoch = max(2, math.ceil(epochs / 2))
        self.min_references = min_references
        self.reason = ""
        self.store = store  # finished trials' histories are artifacts (nas.record.read_history)
        self._histories: dict[int, list[dict]] = {}  # finished trials do not change: read each once

    def should_stop(self, record: dict) -> bool:
        """True when the run should stop after this epoch record (`reason` then says why)."""
        epoch = int(record["epoch"])
        if epoch < self.first_epoch or record.get("fitness") is None:  # only scored epochs compare
            return False
        mine = float(record.get("fitness", 0.0))
        refs = []
        for t in scored_trials(self.study):
            r = read(t)
            if (math.inf if r.gflops is None else r.gflops) > self.gflops:
                continue
            if t.number not in self._histories:
                self._histories[t.number] = read_history(self.study, t, self.store)
            for h in self._histories[t.number]:
                if int(h.get("epoch", -1)) == epoch:
                    refs.append((float(h.get("fitness", 0.0)), t.number))
        if len(refs) < self.min_references:
            return False
        best, number = max(refs)
        if best >= self.floor and mine < self.ratio * best:
            self.reason = (f"fitness {mine:.4f} at epoch {epoch} < {self.ratio:g} x {best:.4f} of trial {number}, "
                           f"which costs no more")
            return True
        return False


__all__ = ["EarlyStop"]

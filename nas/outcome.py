"""What happened to a candidate (`Outcome`) and the exception of a failed proxy run (`CandidateFailed`): the words
the proxy trainer (its status) and the trial record (nas.record, which hands them on) share, below both."""

from __future__ import annotations

from enum import Enum


class Outcome(str, Enum):
    """What happened to a candidate; also the proxy trainer's status (trained, stopped or failed)."""

    TRAINED = "trained"  # trained to the last epoch
    STOPPED = "stopped"  # trained, stopped early (keeps its best score so far)
    REJECTED = "rejected"  # over the budget, never trained
    REUSED = "reused"  # same rendered model as a scored trial: its score is reused
    FAILED = "failed"  # the proxy run failed (non-finite loss, an exception, out of memory)

    def __str__(self) -> str:
        return self.value

    @property
    def scored(self) -> bool:
        """True when the candidate was trained by this trial (to the end or stopped early)."""
        return self in (Outcome.TRAINED, Outcome.STOPPED)


class CandidateFailed(Exception):  # noqa: N818 - the name says what happened
    """A candidate's proxy run failed (Outcome.FAILED); the search records it and goes on."""


__all__ = ["CandidateFailed", "Outcome"]

"""The study record: what `nas search` stores on the study itself (see docs/CONTRACTS.md), read and written
only here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nas.record.trial import as_int

if TYPE_CHECKING:
    import optuna

@dataclass
class StudyRecord:
    """What `nas search` stores on the study itself (see docs/CONTRACTS.md)."""

    space_hash: str | None = None
    space_path: str | None = None
    base: str | None = None
    imgsz: tuple[int, int] | None = None
    budget: dict[str, Any] | None = None
    points: list[str] = field(default_factory=list)
    proxy: dict[str, Any] | None = None
    sampler: str | None = None
    nas_version: str | None = None
    created_by: str | None = None
    weights: dict[str, Any] | None = None  # --weights: the checkpoint fine-tuned from (name, path, sha256, ...)
    objective: str | None = None  # the front's cost axis: "gflops" (None: studies from before) or "latency"
    latency_on: dict[str, Any] | None = None  # {"runtime", "threads"}; the table itself: nas.latency.study

    @property
    def made_by_nas(self) -> bool:
        """True when `nas search` created the study (it writes `space_hash` last, after the rest)."""
        return self.space_hash is not None

def read_study(study: optuna.Study) -> StudyRecord:
    """The study's nas attributes; missing ones read as None."""
    a = study.user_attrs
    imgsz = a.get("imgsz")
    if isinstance(imgsz, int) and not isinstance(imgsz, bool):
        imgsz = (imgsz, imgsz)
    elif isinstance(imgsz, (list, tuple)) and len(imgsz) == 2 and all(as_int(v) is not None for v in imgsz):
        imgsz = (int(imgsz[0]), int(imgsz[1]))
    else:
        imgsz = None
    points = a.get("points")
    return StudyRecord(
        space_hash=a.get("space_hash"),
        space_path=a.get("space_path"),
        base=a.get("base"),
        imgsz=imgsz,
        budget=a.get("budget") if isinstance(a.get("budget"), dict) else None,
        points=list(points) if isinstance(points, list) else [],
        proxy=a.get("proxy"),
        sampler=a.get("sampler"),
        nas_version=a.get("nas_version"),
        created_by=a.get("created_by"),
        weights=a.get("weights") if isinstance(a.get("weights"), dict) else None,
        objective=a.get("objective") if isinstance(a.get("objective"), str) else None,
        latency_on=a.get("latency_on") if isinstance(a.get("latency_on"), dict) else None,
    )


def study_attrs(record: StudyRecord) -> dict[str, Any]:
    """A StudyRecord as the study user attrs to write (imgsz as [h, w], unset fields left out)."""
    out: dict[str, Any] = {}
    for key in StudyRecord.__dataclass_fields__:
        value = getattr(record, key)
        if key == "imgsz" and value is not None:
            value = list(value)
        if value is not None:
            out[key] = value
    return out


__all__ = ["StudyRecord", "read_study", "study_attrs"]

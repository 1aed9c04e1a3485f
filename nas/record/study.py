"""The study record: what `nas search` stores on the study itself (see docs/CONTRACTS.md), read and written
only here, and the study's latency table as it is kept (nas.latency.study gives it meaning)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nas.record.trial import as_int

if TYPE_CHECKING:
    import optuna

LATENCY_TABLE_ATTR = "latency_table"  # study user attr: nas.latency.table.LatencyTable.to_dict()


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
    latency_on: dict[str, Any] | None = None  # {"runtime", "threads"}; the table itself: `latency_table`

    @property
    def made_by_nas(self) -> bool:
        """True when `nas search` created the study (it writes `space_hash` last, after the rest)."""
        return self.space_hash is not None

    @property
    def proxy_epochs(self) -> int | None:
        """The epochs of the proxy every score was trained with; None when the study records no proxy."""
        epochs = as_int(self.proxy.get("epochs")) if isinstance(self.proxy, dict) else None
        return epochs or None


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


def write_study(study: optuna.Study, attrs: dict[str, Any], space_hash: str, only_missing: bool = False) -> None:
    """Store the study record (`study_attrs`), `space_hash` last: its presence means the rest is written.
    `only_missing`: keep the attrs already there (a study whose creator died before finishing)."""
    present = study.user_attrs if only_missing else {}
    for key, value in attrs.items():
        if key != "space_hash" and key not in present:
            study.set_user_attr(key, value)
    study.set_user_attr("space_hash", space_hash)


def latency_table(study: optuna.Study) -> dict[str, Any] | None:
    """The study's stored latency table as written (a dict), or None when it has none."""
    raw = study.user_attrs.get(LATENCY_TABLE_ATTR)
    return raw if isinstance(raw, dict) else None


def write_latency_table(study: optuna.Study, table: dict[str, Any], latency_on: dict[str, Any]) -> None:
    """Keep the study's latency table and the settings it was measured with (`latency_on`)."""
    study.set_user_attr(LATENCY_TABLE_ATTR, table)
    study.set_user_attr("latency_on", latency_on)


__all__ = ["LATENCY_TABLE_ATTR", "StudyRecord", "latency_table", "read_study", "study_attrs", "write_latency_table",
           "write_study"]

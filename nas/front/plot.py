"""The front as a picture: every scored trial, the front along the chosen cost (GFLOPs or latency), its noise
band, the baseline and the budget."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nas.errors import NasError
from nas.files import check_output, save_figure
from nas.front.pareto import AXES, cost_value, is_feasible, pareto_front
from nas.front.report import number_or_none, study_budget
from nas.latency.study import study_objective
from nas.record import TrialRecord, audit_summary, describe, read, read_study

if TYPE_CHECKING:
    from pathlib import Path

    import optuna
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Y_AXES = {"fitness": "fitness (0.1 mAP50 + 0.9 mAP50-95)", "mAP50-95": "mAP50-95", "mAP50": "mAP50"}
X_AXES = {"gflops": "GFLOPs", "latency": "latency (ms, predicted by the study's latency table)"}
_MARKERS = "os^Dv<>PXh"
_COLOURS = ("tab:blue", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray")


def _y(r: TrialRecord, y: str) -> float | None:
    return {"fitness": r.objective_fitness, "mAP50-95": r.mAP50_95, "mAP50": r.mAP50}[y]


def plot_axis(study: optuna.Study, x: str | None) -> str:
    """The x axis to draw: `x`, or the study's objective; NasError for latency in a study that recorded none."""
    x = x or study_objective(study)
    if x not in AXES:
        raise NasError(f"--x {x!r} is not one of: {', '.join(AXES)}")
    if x == "latency" and not any(read(t).latency_ms is not None for t in study.get_trials(deepcopy=False)):
        raise NasError(f"study {study.study_name!r} records no latency (it was searched without a latency table): "
                       "plot --x gflops, or search with --latency-on torch")
    return x


def front_figure(study: optuna.Study, y: str = "fitness", x: str | None = None) -> Figure:
    """The front picture: every scored trial labelled by number (a marker per width), the front along `x`
    (default: the study's objective), its noise band once `nas audit` has measured it, the baseline and the
    budget; over-budget and failed trials on a strip below at their cost, with no score (never trained).
    Along latency, a trained trial's measured latency is drawn as a tick joined to its prediction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if y not in Y_AXES:
        raise NasError(f"--y {y!r} is not one of: {', '.join(Y_AXES)}")
    x = plot_axis(study, x)
    trials = study.get_trials(deepcopy=False)
    records = {t.number: read(t) for t in trials}
    front = [records[t.number] for t in pareto_front(trials, x)]
    budget = study_budget(study)
    audit = audit_summary(study)

    def cx(r: TrialRecord) -> float | None:
        return cost_value(r, x)

    scored = [r for r in records.values() if is_feasible(r) and _y(r, y) is not None and cx(r) is not None]
    over = [r for r in records.values() if r.complete and not is_feasible(r) and cx(r) is not None]
    failed = [r for r in records.values() if r.state == "FAIL" and cx(r) is not None]

    strip = bool(over or failed)
    key = _front_key(front, read_study(study).points)
    height = (5.6 if strip else 5.0) + 0.13 * len(key)
    fig, axes = plt.subplots(2 if strip else 1, 1, figsize=(8, height), dpi=120, sharex=True,
                             squeeze=False, gridspec_kw={"height_ratios": [7, 1]} if strip else None)
    ax = axes[0][0]
    by_width: dict[float | None, list[TrialRecord]] = {}
    for r in scored:
        by_width.setdefault(number_or_none((r.arch or {}).get("width_multiple")), []).append(r)
    for i, w in enumerate(sorted(by_width, key=lambda v: (v is None, v or 0.0))):
        group = by_width[w]
        ax.scatter([cx(r) for r in group], [_y(r, y) for r in group], s=28, alpha=0.8,
                   marker=_MARKERS[i % len(_MARKERS)], color=_COLOURS[i % len(_COLOURS)], zorder=3,
                   label=f"width {'unknown' if w is None else format(w, 'g')} ({len(group)})")
    measured = [r for r in scored if x == "latency" and r.measured_latency_ms is not None]
    if measured:
        for r in measured:
            ax.plot([cx(r), r.measured_latency_ms], [_y(r, y)] * 2, c="0.6", lw=0.7, zorder=1)
        ax.scatter([r.measured_latency_ms for r in measured], [_y(r, y) for r in measured], s=22, marker="|",
                   c="0.35", zorder=2, label=f"measured after training ({len(measured)})")
    front = [r for r in front if _y(r, y) is not None]
    if front:
        xs, ys = [cx(r) for r in front], [_y(r, y) for r in front]
        if y == "fitness":  # a staircase: each front point holds until the next; the last one a little further
            spread = max(cx(r) for r in scored) - min(cx(r) for r in scored)
            xs, ys = [*xs, xs[-1] + 0.03 * (spread or 1.0)], [*ys, ys[-1]]
            ax.step(xs, ys, where="post", c="tab:green", lw=1.4, label=f"Pareto front ({len(front)})", zorder=2)
            if audit is not None and audit.noise is not None:
                ax.fill_between(xs, [v - audit.noise for v in ys], [v + audit.noise for v in ys], step="post",
                                color="tab:green", alpha=0.15, lw=0,
                                label=f"noise ±{audit.noise:.3f} (nas audit)")
        else:
            ax.plot(xs, ys, c="tab:green", lw=1.2, label=f"Pareto front by fitness ({len(front)})", zorder=2)
    base = next((r for r in scored if r.baseline), None)
    if base is not None:
        ax.scatter([cx(base)], [_y(base, y)], s=170, marker="*", c="gold", edgecolors="black",
                   zorder=4, label=f"baseline (trial {base.number})")
    ax.margins(x=0.08, y=0.12)
    ax.set_ylabel(Y_AXES[y])
    imgsz = read_study(study).imgsz
    where = f" at {imgsz[0]}x{imgsz[1]}" if imgsz else ""
    ax.set_title(f"study {study.study_name}: {y} vs {'latency' if x == 'latency' else 'GFLOPs'}{where}")
    ax.grid(True, alpha=0.3)
    if strip:
        sx = axes[1][0]
        rows = [("over budget (not trained)", over, "x", "tab:red"), ("failed", failed, "v", "0.5")]
        rows = [row for row in rows if row[1]]
        for k, (name, group, marker, colour) in enumerate(rows):
            sx.scatter([cx(r) for r in group], [k] * len(group), s=30,
                       marker=marker, c=colour, label=f"{name} ({len(group)})")
        sx.set_yticks(range(len(rows)), [f"{name} ({len(group)})" for name, group, _, _ in rows], fontsize=7)
        sx.set_ylim(-0.7, len(rows) - 0.3)
        sx.grid(True, axis="x", alpha=0.3)
        sx.set_xlabel(X_AXES[x])
    else:
        ax.set_xlabel(X_AXES[x])
    limit = budget.latency_ms if x == "latency" else budget.gflops
    if limit is not None:
        unit = "ms" if x == "latency" else "GFLOPs"
        for a in (row[0] for row in axes):
            a.axvline(limit, c="tab:red", ls="--", lw=1, label=f"budget {limit:g} {unit}" if a is ax else None)
    bottom = 0.0
    if key:  # what each front trial is, in the short format every report shares
        fig.text(0.01, 0.01, "\n".join(key), fontsize=6.5, family="monospace", va="bottom")
        bottom = (0.13 * len(key) + 0.1) / height
    fig.tight_layout(rect=(0, bottom, 1, 1))
    _label_points(ax, [(cx(r), _y(r, y), r.number) for r in scored])
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")
    return fig


def _front_key(front: list[TrialRecord], points: list[str], most: int = 10) -> list[str]:
    """'trial 3: w0.25 d0.33 P3=SGE(groups=8)' per front trial (the first `most`), cut to the figure's width."""
    lines = [f"trial {r.number}: {describe(r, points)}" for r in front[:most]]
    lines = [line if len(line) <= 140 else line[:139] + "…" for line in lines]
    return lines + ([f"... and {len(front) - most} more front trials (nas pareto)"] if len(front) > most else [])


def _label_points(ax: Axes, points: list[tuple[float, float, int]], fontsize: float = 7.0) -> None:
    """Write every point's trial number beside it without overlaps: points closer than a marker share one
    label ('4, 7'); each label takes the first free spot around its point, with a leader line when far."""
    dpi = ax.figure.dpi
    px = dpi / 72.0
    to_px = ax.transData.transform
    groups: list[tuple[float, float, list[int]]] = []
    for x, yv, n in sorted(points, key=lambda p: (p[0], p[1], p[2])):
        dx, dy = to_px((x, yv))
        for g in groups:
            gx, gy = to_px((g[0], g[1]))
            if abs(gx - dx) < 4 and abs(gy - dy) < 4:
                g[2].append(n)
                break
        else:
            groups.append((x, yv, [n]))
    taken = [(*(to_px((x, yv)) - 5), *(to_px((x, yv)) + 5)) for x, yv, _ in groups]  # the markers themselves
    box = ax.get_window_extent()
    h = fontsize * 1.3 * px
    for x, yv, numbers in groups:
        text = ", ".join(map(str, sorted(numbers)))
        w = len(text) * fontsize * 0.62 * px
        cx, cy = to_px((x, yv))
        best = None
        for step in (1, 2, 3, 4):
            for sx, sy in ((1, 1), (1, -1), (-1, 1), (-1, -1), (0, 1), (0, -1)):
                ox = (5 * px * step if sx > 0 else -5 * px * step - w) if sx else -w / 2
                oy = (4 * px * step if sy > 0 else -4 * px * step - h)
                rect = (cx + ox, cy + oy, cx + ox + w, cy + oy + h)
                inside = box.x0 <= rect[0] and rect[2] <= box.x1 and box.y0 <= rect[1] and rect[3] <= box.y1
                overlap = sum(_overlap(rect, t) for t in taken) + (0 if inside else w * h)
                if best is None or overlap < best[0]:
                    best = (overlap, rect, ox, oy, step)
                if overlap == 0:
                    break
            if best[0] == 0:
                break
        _, rect, ox, oy, step = best
        taken.append(rect)
        arrow = {"arrowstyle": "-", "lw": 0.5, "color": "0.4"} if step > 1 else None
        ax.annotate(text, (x, yv), xytext=(ox / px, oy / px), textcoords="offset points", fontsize=fontsize,
                    arrowprops=arrow, zorder=5)


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def plot_front(study: optuna.Study, path: str | Path, y: str = "fitness", x: str | None = None) -> Path:
    """Save `front_figure` to a picture file (PNG, PDF, SVG or JPG by its suffix)."""
    check_output(path, "--plot")
    return save_figure(front_figure(study, y, x), path)

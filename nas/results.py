"""Reading a finished (or running) study: the Pareto front as plain rows, picks, JSON and the front plot."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.budget import Budget, format_params
from nas.errors import NasError
from nas.files import check_output, guarded_output
from nas.pareto import closest_to_budget, count_outcomes, is_feasible, pareto_front, ties, twins
from nas.record import Outcome, TrialRecord, describe, read, read_study

OUTCOMES = {o.value for o in Outcome}

if TYPE_CHECKING:
    import optuna
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from optuna.trial import FrozenTrial
    from rich.table import Table

    from nas.audit import AuditSummary

@dataclass
class TrialRow:
    """One trial as the results commands show it."""

    trial: int
    state: str
    fitness: float | None
    mAP50: float | None
    mAP50_95: float | None
    gflops: float | None
    params: int | None
    choices: dict[str, str]  # point -> 'none' | 'SGE(groups=8)' ...
    choices_text: str  # every choice in one short line (nas.record.describe), width and depth included
    width_multiple: float | None
    depth_multiple: float | None
    feasible: bool
    over_budget: bool
    baseline: bool
    d_fitness: float | None = None  # against the baseline trial
    d_gflops: float | None = None
    excess: dict[str, float] | None = None  # constraint values > 0 (infeasible trials)
    fail_reason: str | None = None
    ties: list[int] | None = None  # better front members within the audit's noise; None = noise unknown
    twins: list[int] = field(default_factory=list)  # later trials that reused this trial's score (same model)

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["mAP50-95"] = doc.pop("mAP50_95")
        return doc


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def baseline_trial(study: optuna.Study) -> FrozenTrial | None:
    """The completed trial marked `baseline=True` (the unmodified base model), if any."""
    for t in study.get_trials(deepcopy=False):
        r = read(t)
        if r.complete and r.baseline:
            return t
    return None


def study_budget(study: optuna.Study) -> Budget:
    """The budget recorded in the study's user attrs."""
    return Budget.from_attr(read_study(study).budget)


def trial_row(
    t: FrozenTrial, baseline: FrozenTrial | None = None, points: list[str] | None = None
) -> TrialRow:
    """A FrozenTrial -> TrialRow (deltas against `baseline` when given)."""
    r = read(t)
    fitness, gflops = r.objective_fitness, r.objective_gflops
    arch = r.arch or {}
    row = TrialRow(
        trial=t.number,
        state=r.state,
        fitness=fitness,
        mAP50=r.mAP50,
        mAP50_95=r.mAP50_95,
        gflops=gflops,
        params=r.params,
        choices=dict(r.choices),
        choices_text=describe(r, points),
        width_multiple=_float(arch.get("width_multiple")),
        depth_multiple=_float(arch.get("depth_multiple")),
        feasible=is_feasible(t),
        over_budget=r.over_budget or bool(r.excess),
        baseline=r.baseline,
        fail_reason=r.fail_reason,
        excess=r.excess or None,
    )
    if baseline is not None and fitness is not None and gflops is not None:
        b = read(baseline)
        bf, bg = b.objective_fitness, b.objective_gflops
        row.d_fitness = None if bf is None else fitness - bf
        row.d_gflops = None if bg is None else gflops - bg
    return row


@dataclass
class FrontReport:
    """Everything `nas pareto` shows, as plain data."""

    study: str
    storage: str
    budget: Budget
    points: list[str]
    counts: dict[str, int]
    baseline: TrialRow | None
    front: list[TrialRow]
    closest: list[TrialRow]  # only when the front is empty
    proxy: dict[str, Any] | None = None  # the study's proxy settings (data, epochs, imgsz, batch, seed)
    audit: AuditSummary | None = None  # the last finished `nas audit` of the study

    @property
    def noise(self) -> float | None:
        """The fitness difference the audit measured as noise (2 x seed sd); None when unknown."""
        return None if self.audit is None else self.audit.noise

    def to_json(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "storage": self.storage,
            "budget": self.budget.to_attr(),
            "points": self.points,
            "proxy": self.proxy,
            "trials": self.counts,
            "noise": self.noise,
            "audit": None if self.audit is None else self.audit.to_attr(),
            "baseline": None if self.baseline is None else self.baseline.to_json(),
            "front": [r.to_json() for r in self.front],
            "closest_to_budget": [r.to_json() for r in self.closest],
        }


def front_report(study: optuna.Study, storage_label: str = "") -> FrontReport:
    """The feasible front with baseline deltas and ties within the audit's noise, or the candidates closest
    to the budget when the front is empty."""
    from nas.audit import audit_summary

    trials = study.get_trials(deepcopy=False)
    sr = read_study(study)
    points = sr.points
    budget = study_budget(study)
    base = baseline_trial(study)
    audit = audit_summary(study)
    front_trials = pareto_front(trials)
    tie_map = ties(front_trials, None if audit is None else audit.noise)
    front = [trial_row(t, base, points) for t in front_trials]
    twin_map = twins(trials)
    for row in front:
        row.ties = None if tie_map is None else tie_map[row.trial]
        row.twins = twin_map.get(row.trial, [])
    closest = [] if front else [trial_row(t, base, points) for t in closest_to_budget(study, budget)]
    return FrontReport(
        study=study.study_name,
        storage=storage_label,
        budget=budget,
        points=points,
        counts={k: v for k, v in count_outcomes(trials).items() if k not in OUTCOMES},  # states, feasible, total
        baseline=None if base is None else trial_row(base, None, points),
        front=front,
        closest=closest,
        proxy=sr.proxy if isinstance(sr.proxy, dict) else None,
        audit=audit,
    )


def fmt(value: float | None, spec: str = ".4f", signed: bool = False) -> str:
    """A number for a table cell; '-' for None."""
    if value is None:
        return "-"
    return format(value, ("+" if signed else "") + spec)


def fmt_params(value: int | None) -> str:
    return "-" if value is None else format_params(value)


def fmt_trial(r: TrialRow) -> str:
    """'7', '0 (baseline)', '19 (= 23)' or '0 (baseline) (= 16, 21)': the trial and the twins that reused its score."""
    text = f"{r.trial}{' (baseline)' if r.baseline else ''}"
    return text + (f" (= {', '.join(map(str, r.twins))})" if r.twins else "")


def fmt_ties(numbers: list[int] | None) -> str:
    """'≈ trial 4' / '≈ trials 4, 7'; '' for none (or unknown)."""
    if not numbers:
        return ""
    return ("≈ trial " if len(numbers) == 1 else "≈ trials ") + ", ".join(map(str, numbers))


def noise_line(audit: AuditSummary | None) -> str:
    """One line on what the measured noise says about ties (or that it is unknown until `nas audit`)."""
    if audit is None:
        return "ties: unknown until `nas audit` measures the seed noise"
    if audit.noise is None:
        return "ties: unknown (the audit ran no extra seeds; rerun `nas audit --seeds 2`)"
    tau = "-" if audit.tau is None else f"{audit.tau:.2f}"
    return (f"noise: fitness differences up to {audit.noise:.4f} are noise (nas audit: 2 x seed sd, τ {tau} "
            f"against {audit.reference_epochs}-epoch training, {audit.n_candidates} candidates); "
            "≈ marks a front trial that ties with a better-scoring one")


def proxy_text(proxy: dict[str, Any] | None) -> str:
    """The proxy settings behind the fitness in one line: data, epochs, imgsz, batch, seed."""
    if not proxy:
        return "unknown (the study records no proxy settings)"
    data = proxy.get("data", "-")
    synthetic = proxy.get("synthetic")
    if data == "synthetic" and isinstance(synthetic, list) and len(synthetic) == 2:
        data = f"synthetic ({synthetic[0]} train / {synthetic[1]} val images)"
    epochs = proxy.get("epochs", "-")
    real = proxy.get("data") not in (None, "-", "synthetic") and proxy.get("imgsz") == 128  # the default's size
    return (f"data {data}, {epochs} epoch{'' if epochs == 1 else 's'}, imgsz {proxy.get('imgsz', '-')}"
            + (" (the default, chosen on synthetic objects, not real images)" if real else "")
            + f", batch {proxy.get('batch', '-')}, seed {proxy.get('seed', '-')}")


def front_table(report: FrontReport, title: str | None = None) -> Table:
    """The front as a rich Table: the one layout `nas pareto` and the search's final summary print."""
    from rich.markup import escape
    from rich.table import Table

    n = len(report.front)
    table = Table(title=title or f"Pareto front ({n} trial{'s' if n != 1 else ''}): fitness vs GFLOPs",
                  title_justify="left", caption=escape(noise_line(report.audit)), caption_justify="left")
    for col in ("trial", "fitness", "mAP50", "mAP50-95", "GFLOPs", "params", "Δfitness", "ΔGFLOPs"):
        table.add_column(col, justify="right", no_wrap=True)
    if report.noise is not None:
        table.add_column("tie", justify="left", no_wrap=True)
    table.add_column("choices", justify="left")
    for r in report.front:
        cells = [fmt_trial(r), fmt(r.fitness), fmt(r.mAP50), fmt(r.mAP50_95),
                 fmt(r.gflops, ".3f"), fmt_params(r.params), fmt(r.d_fitness, ".4f", True),
                 fmt(r.d_gflops, ".4f", True)]
        if report.noise is not None:
            cells.append(fmt_ties(r.ties))
        table.add_row(*cells, escape(r.choices_text))
    return table


# ------------------------------------------------------------------------------------------- the plot

Y_AXES = {"fitness": "fitness (0.1 mAP50 + 0.9 mAP50-95)", "mAP50-95": "mAP50-95", "mAP50": "mAP50"}
_MARKERS = "os^Dv<>PXh"
_COLOURS = ("tab:blue", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray")


def _y(r: TrialRecord, y: str) -> float | None:
    return {"fitness": r.objective_fitness, "mAP50-95": r.mAP50_95, "mAP50": r.mAP50}[y]


def front_figure(study: optuna.Study, y: str = "fitness") -> Figure:
    """The front picture: every scored trial labelled by number (a marker per width), the front, its noise
    band once `nas audit` has measured it, the baseline and the budget; over-budget and failed trials on a
    strip below at their GFLOPs, with no score (they were never trained)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nas.audit import audit_summary

    if y not in Y_AXES:
        raise NasError(f"--y {y!r} is not one of: {', '.join(Y_AXES)}")
    trials = study.get_trials(deepcopy=False)
    records = {t.number: read(t) for t in trials}
    front = [records[t.number] for t in pareto_front(trials)]
    budget = study_budget(study)
    audit = audit_summary(study)
    scored = [r for r in records.values() if is_feasible(r) and _y(r, y) is not None]
    over = [r for r in records.values() if r.complete and not is_feasible(r) and r.objective_gflops is not None]
    failed = [r for r in records.values() if r.state == "FAIL" and r.gflops is not None]

    strip = bool(over or failed)
    key = _front_key(front, read_study(study).points)
    height = (5.6 if strip else 5.0) + 0.13 * len(key)
    fig, axes = plt.subplots(2 if strip else 1, 1, figsize=(8, height), dpi=120, sharex=True,
                             squeeze=False, gridspec_kw={"height_ratios": [7, 1]} if strip else None)
    ax = axes[0][0]
    by_width: dict[float | None, list[TrialRecord]] = {}
    for r in scored:
        by_width.setdefault(_float((r.arch or {}).get("width_multiple")), []).append(r)
    for i, w in enumerate(sorted(by_width, key=lambda v: (v is None, v or 0.0))):
        group = by_width[w]
        ax.scatter([r.objective_gflops for r in group], [_y(r, y) for r in group], s=28, alpha=0.8,
                   marker=_MARKERS[i % len(_MARKERS)], color=_COLOURS[i % len(_COLOURS)], zorder=3,
                   label=f"width {'unknown' if w is None else format(w, 'g')} ({len(group)})")
    front = [r for r in front if _y(r, y) is not None]
    if front:
        xs, ys = [r.objective_gflops for r in front], [_y(r, y) for r in front]
        if y == "fitness":  # a staircase: each front point holds until the next; the last one a little further
            spread = max(r.objective_gflops for r in scored) - min(r.objective_gflops for r in scored)
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
        ax.scatter([base.objective_gflops], [_y(base, y)], s=170, marker="*", c="gold", edgecolors="black",
                   zorder=4, label=f"baseline (trial {base.number})")
    ax.margins(x=0.08, y=0.12)
    ax.set_ylabel(Y_AXES[y])
    imgsz = read_study(study).imgsz
    where = f" at {imgsz[0]}x{imgsz[1]}" if imgsz else ""
    ax.set_title(f"study {study.study_name}: {y} vs GFLOPs{where}")
    ax.grid(True, alpha=0.3)
    if strip:
        sx = axes[1][0]
        rows = [("over budget (not trained)", over, "x", "tab:red"), ("failed", failed, "v", "0.5")]
        rows = [row for row in rows if row[1]]
        for k, (name, group, marker, colour) in enumerate(rows):
            sx.scatter([r.objective_gflops for r in group], [k] * len(group), s=30,
                       marker=marker, c=colour, label=f"{name} ({len(group)})")
        sx.set_yticks(range(len(rows)), [f"{name} ({len(group)})" for name, group, _, _ in rows], fontsize=7)
        sx.set_ylim(-0.7, len(rows) - 0.3)
        sx.grid(True, axis="x", alpha=0.3)
        sx.set_xlabel("GFLOPs")
    else:
        ax.set_xlabel("GFLOPs")
    if budget.gflops is not None:
        for a in (row[0] for row in axes):
            a.axvline(budget.gflops, c="tab:red", ls="--", lw=1,
                      label=f"budget {budget.gflops:g} GFLOPs" if a is ax else None)
    bottom = 0.0
    if key:  # what each front trial is, in the short format every report shares
        fig.text(0.01, 0.01, "\n".join(key), fontsize=6.5, family="monospace", va="bottom")
        bottom = (0.13 * len(key) + 0.1) / height
    fig.tight_layout(rect=(0, bottom, 1, 1))
    _label_points(ax, [(r.objective_gflops, _y(r, y), r.number) for r in scored])
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


def plot_front(study: optuna.Study, path: str | Path, y: str = "fitness") -> Path:
    """Save `front_figure` to a picture file (PNG, PDF, SVG or JPG by its suffix) through the guarded writer."""
    import matplotlib.pyplot as plt

    path = check_output(path, "--plot")
    fig = front_figure(study, y)
    try:
        with guarded_output(path, "--plot") as tmp:
            fig.savefig(tmp)
    finally:
        plt.close(fig)
    return path

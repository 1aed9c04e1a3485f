"""A latency-budget search next to a GFLOPs-budget search, at the same wall-clock budget: which fronts differ, and how.

    taskset -c 1 python bench/bench_budget_axes.py                 # both searches, 10 minutes each, then the report
    taskset -c 1 python bench/bench_budget_axes.py --epochs 2 --imgsz 64   # a cheaper proxy: more trials per minute
    python bench/bench_budget_axes.py --report-only                # the report from what is stored

The two searches run the README main command's space and proxy one after the other, one worker, on the same machine:

- `gflops`:  `nas search --space neck --budget 10gflops --latency-on torch` (the README's budget; latency is
  recorded for every candidate, the table is built at start-up like the other's);
- `latency`: `nas search --space neck --budget <L>ms --objective latency`, where L is what the widest plain model
  that 10 GFLOPs admits (yolov5n at width 0.375, no blocks) costs by the first search's latency table, rounded up
  to the millisecond: the same price, paid in time instead of FLOPs.

Each study goes to its own journal under bench/results/budget_axes/; a finished search is recorded in
bench/results/budget_axes.json and skipped when the bench runs again (an unfinished one is started afresh, so both
always had the whole wall-clock budget). The report (bench/results/budget_axes.md) compares the fronts in both
costs: each front's members with GFLOPs, predicted and measured latency; how many of the GFLOPs front's members
measure over the latency budget; the best fitness each search found within the latency budget; the hypervolume of
both fronts in (fitness, measured latency) with the reference point (0, latency budget).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from nas.latency import predict
from nas.latency.study import stored_table
from nas.record import read, read_study
from nas.space import Architecture, load_space
from nas.storage import load_nas_study

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results"
STORE = OUT / "budget_axes"
GFLOPS_BUDGET = 10.0
RUNS = {
    "gflops": ["--budget", f"{GFLOPS_BUDGET:g}gflops", "--latency-on", "torch"],
    "latency": ["--objective", "latency"],  # its --budget: latency_budget() from the first search's table
}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load(name: str):
    return load_nas_study(f"journal:{STORE / name / 'nas.journal'}", name)


def latency_budget() -> float:
    """The predicted latency of the widest plain model the GFLOPs budget admits, by the GFLOPs study's table."""
    table = stored_table(load("gflops"))
    space = load_space("neck")
    plain = Architecture(space.depth_multiple[0], max(space.width_multiple), {})
    return float(math.ceil(predict(table, plain)))


def run_search(name: str, minutes: float, seed: int, extra: list[str], proxy: list[str]) -> dict:
    """One search of `minutes` wall time into its own journal; the finished run's summary."""
    folder = STORE / name
    shutil.rmtree(folder, ignore_errors=True)  # an unfinished run starts afresh: both get the whole budget
    folder.mkdir(parents=True)
    cmd = ["nas", "search", "--space", "neck", *RUNS[name], *extra, *proxy, "--study", name,
           "--timeout", f"{int(minutes * 60)}s", "--trials", "10000", "--workers", "1", "--seed", str(seed),
           "--storage", f"journal:{(folder / 'nas.journal').relative_to(ROOT)}"]
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True)
    return {"name": name, "command": " ".join(cmd), "minutes": minutes, "seed": seed, "proxy": proxy,
            "wall_s": round(time.perf_counter() - start, 1)}


def run_budget(run: dict) -> dict[str, float]:
    """{'gflops': G} or {'latency_ms': L}: the budget a finished run searched under."""
    words = run["command"].split()
    text = words[words.index("--budget") + 1]
    return {"latency_ms": float(text[:-2])} if text.endswith("ms") else {"gflops": float(text[:-6])}


def front_rows(name: str) -> tuple[list[dict], dict]:
    """Every scored trial of a stored study as plain rows, and the study's counts."""
    study = load(name)
    rows, counts = [], {"trained": 0, "rejected": 0, "total": 0}
    for t in study.get_trials(deepcopy=False):
        r = read(t)
        counts["total"] += 1
        if r.outcome is not None and r.outcome.value == "rejected":
            counts["rejected"] += 1
        if not r.scored:
            continue
        counts["trained"] += 1
        rows.append({"trial": t.number, "fitness": r.objective_fitness, "gflops": r.gflops,
                     "latency_ms": r.latency_ms, "measured_ms": r.measured_latency_ms, "candidate": r.candidate,
                     "complete": r.outcome.value == "trained"})
    counts["objective"] = read_study(study).objective or "gflops"
    return rows, counts


def front(rows: list[dict], cost: str) -> list[dict]:
    """The non-dominated rows in (fitness max, `cost` min), by cost."""
    done = sorted((r for r in rows if r["complete"] and r[cost] is not None and r["fitness"] is not None),
                  key=lambda r: (r[cost], -r["fitness"]))
    out: list[dict] = []
    for r in done:
        if not out or r["fitness"] > out[-1]["fitness"]:
            out.append(r)
    return out


def hypervolume(points: list[dict], cost: str, limit: float) -> float:
    """Area dominated by the front in (fitness, cost) up to (0, limit): larger is better."""
    pts = sorted((r[cost], r["fitness"]) for r in points if r[cost] is not None and r[cost] <= limit)
    area, best = 0.0, 0.0
    for i, (c, f) in enumerate(pts):
        best = max(best, f)
        nxt = pts[i + 1][0] if i + 1 < len(pts) else limit
        area += best * (nxt - c)
    return area


def fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def report(done: dict) -> str:
    limit = run_budget(done["latency"])["latency_ms"] if "latency" in done else latency_budget()
    lines = [
        "# A latency-budget search next to a GFLOPs-budget search, same wall-clock budget",
        "",
        "Command: `taskset -c 1 python bench/bench_budget_axes.py`  ",
        f"Machine: {cpu_name()}; torch {torch.__version__}; one worker, 1 thread; latency measured in torch "
        "eager, 1 thread, batch 1, 640 px (the neck space's imgsz).",
        "",
        f"Budgets: {GFLOPS_BUDGET:g} GFLOPs, and {limit:g} ms, the latency the first search's table predicts for "
        "the widest plain model 10 GFLOPs admits (width 0.375, no blocks).",
        "",
    ]
    fronts = {}
    for name, run in done.items():
        rows, counts = front_rows(name)
        own = front(rows, "latency_ms" if counts["objective"] == "latency" else "gflops")
        fronts[name] = (rows, own)
        over = [r for r in own if r["measured_ms"] is not None and r["measured_ms"] > limit]
        within = [r for r in rows if r["complete"] and r["measured_ms"] is not None
                  and r["measured_ms"] <= limit]
        slow = [r for r in rows if r["complete"] and r["measured_ms"] is not None and r["measured_ms"] > limit]
        best = max(within, key=lambda r: r["fitness"], default=None)
        lines += [
            f"## `{name}`: `{run['command']}`",
            "",
            f"{counts['total']} trials in {run['wall_s']:.0f} s: {counts['trained']} trained ({len(slow)} of them "
            f"measure over {limit:g} ms), {counts['rejected']} rejected before training. Front (fitness against "
            f"{counts['objective']}): {len(own)} trials, "
            f"{len(over)} of them measure over {limit:g} ms. Best fitness measured within "
            f"{limit:g} ms: {fmt(best and best['fitness'], '.4f')}"
            + (f" (trial {best['trial']})." if best else "."),
            "",
            "| trial | fitness | GFLOPs | predicted | measured | candidate |",
            "|---|---|---|---|---|---|",
        ]
        for r in own:
            lines.append(f"| {r['trial']} | {fmt(r['fitness'], '.4f')} | {fmt(r['gflops'], '.2f')} | "
                         f"{fmt(r['latency_ms'], '.1f')} ms | {fmt(r['measured_ms'], '.1f')} ms | {r['candidate']} |")
        lines.append("")
    if len(fronts) == 2:
        lines += ["## Side by side", "",
                  f"| search | trained | front | front over {limit:g} ms (measured) | hypervolume (fitness × ms, "
                  f"measured, ref {limit:g} ms) | hypervolume (fitness × GFLOPs, ref {GFLOPS_BUDGET:g}) |",
                  "|---|---|---|---|---|---|"]
        for name, (rows, own) in fronts.items():
            n_over = sum(r["measured_ms"] is not None and r["measured_ms"] > limit for r in own)
            trained = sum(r["complete"] for r in rows)
            lines.append(f"| {name} | {trained} | {len(own)} | {n_over} | "
                         f"{hypervolume(front(rows, 'measured_ms'), 'measured_ms', limit):.2f} | "
                         f"{hypervolume(front(rows, 'gflops'), 'gflops', GFLOPS_BUDGET):.3f} |")
        lines += ["", "Hypervolumes are over each study's fully trained candidates (their own front in that cost); "
                  "a candidate over the reference adds nothing."]
    lines += ["", "What this covers: one seed of each search, one machine, the synthetic proxy. It does not say how "
              "the searches differ across seeds (fitness noise between two candidates can exceed their difference: "
              "`nas audit` measures it) or on a GPU."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="wall time of each search")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=None, help="proxy epochs (default: the search's)")
    ap.add_argument("--imgsz", type=int, default=None, help="proxy image size (default: the search's)")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    state_path = OUT / "budget_axes.json"
    done = json.loads(state_path.read_text()) if state_path.exists() else {}
    proxy = [*(["--epochs", str(args.epochs)] if args.epochs else []),
             *(["--imgsz", str(args.imgsz)] if args.imgsz else [])]
    if not args.report_only:
        for name in RUNS:
            same = name in done and all(done[name].get(k) == v for k, v in
                                        (("minutes", args.minutes), ("seed", args.seed), ("proxy", proxy)))
            if same:
                print(f"{name}: done before, skipped", flush=True)
                continue
            extra = ["--budget", f"{latency_budget():g}ms"] if name == "latency" else []
            done[name] = run_search(name, args.minutes, args.seed, extra, proxy)
            if name == "gflops":
                done.pop("latency", None)  # its budget came from this run's table
            state_path.write_text(json.dumps(done, indent=1) + "\n")
    text = report(done)
    (OUT / "budget_axes.md").write_text(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()

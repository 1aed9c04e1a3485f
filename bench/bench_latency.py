"""How well the latency table predicts a candidate's real latency, and how differently GFLOPs and latency order
the candidates (issue 19 section 1).

    taskset -c 1 python bench/bench_latency.py                          # neck, torch eager, 1 thread, 40 candidates
    taskset -c 1 python bench/bench_latency.py --runtime onnxruntime    # the same candidates in onnxruntime
    python bench/bench_latency.py --report-only                         # re-render the markdown from the JSON

The table is measured once exactly as `nas search --budget 80ms` measures it (nas.latency.measure_table: at each
width, the base and the base plus each one of a point's choices, interleaved, minimum of 5 after 2 warm-ups).
The candidates are the seven of the issue (no blocks at both widths; SGE, GE at P3/P4/P5; FLA at P3; BiFormer at P3
and at P3/P4/P5) and random architectures of the space (seeded, no duplicates). Each candidate is then measured
for real with the same method (nas.latency.measure_many, interleaved in groups of `--group`) and its prediction
(base + the sum of its slots' deltas) compared: error = (predicted - measured) / measured. Several blocks in one
model interact (caches, memory traffic), so the error is also given by the number of blocks a candidate has.

Progress is stored in the JSON after the table and after every group, so an interrupted run continues where it
stopped; a changed space, runtime or thread count starts afresh. Pin it to one idle core (`taskset -c 1`) on a
shared machine; rows measured while the machine was too busy carry the NOISY flag the measurement gives them.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from nas.audit.stats import kendall_tau
from nas.cost import predict_cost
from nas.latency import LatencyTable, latency_key, measure_table, predict
from nas.latency.measure import cpu_model, measure_many
from nas.space import Architecture, block_configs, load_space, render

ROOT = Path(__file__).resolve().parents[1]
GE_G = {"extent": "global", "param_gather": True, "excite_mlp": True}
FLA = {"num_heads": 4, "focusing_factor": 3, "kernel_size": 5}
BRA = {"num_heads": 4, "n_win": 8, "topk": 4, "side_dwconv": 3}
NAMED = {  # the candidates, as choices at P3/P4/P5 (width 0.25 unless named)
    "no blocks": {},
    "SGE at P3, P4, P5": {p: {"block": "SGE", "groups": 8} for p in ("P3", "P4", "P5")},
    "GE (global) at P3, P4, P5": {p: {"block": "GE", **GE_G} for p in ("P3", "P4", "P5")},
    "FLA at P3": {"P3": {"block": "FLA", **FLA}},
    "BiFormer at P3": {"P3": {"block": "BiFormer", **BRA}},
    "BiFormer at P3, P4, P5": {p: {"block": "BiFormer", **BRA} for p in ("P3", "P4", "P5")},
}


def candidates(space: Any, n: int, seed: int) -> list[tuple[str, Architecture]]:
    """The named candidates, then random ones until there are n (or the space runs out)."""
    gd = space.depth_multiple[0]
    empty = {p.name: {"block": p.empty} for p in space.points}
    out = [(name, Architecture(gd, space.width_multiple[0], {**empty, **ch})) for name, ch in NAMED.items()]
    out.append((f"no blocks, w{space.width_multiple[-1]:g}", Architecture(gd, space.width_multiple[-1], empty)))
    seen = {a.short().__repr__() + str(a.width_multiple) for _, a in out}
    rng = random.Random(seed)
    for _ in range(100 * n):
        if len(out) >= n:
            break
        choices = {}
        for p in space.points:
            block = rng.choice(p.blocks)
            choices[p.name] = {"block": block, **rng.choice(block_configs(p, block) or [{}])}
        arch = Architecture(rng.choice(space.depth_multiple), rng.choice(space.width_multiple), choices)
        key = arch.short().__repr__() + str(arch.width_multiple)
        if key not in seen:
            seen.add(key)
            out.append((f"random {len(out)}", arch))
    return out


def describe(space: Any, arch: Architecture) -> str:
    blocks = {k: v for k, v in arch.short().items() if not v.startswith(("none", "keep"))}
    text = ", ".join(f"{k} {v}" for k, v in blocks.items()) or "no blocks"
    return f"w{arch.width_multiple:g} {text}"


def n_blocks(space: Any, arch: Architecture) -> int:
    return sum(1 for p in space.points if arch.choices[p.name]["block"] != p.empty)


def run(args: argparse.Namespace) -> dict[str, Any]:
    space = load_space(args.space)
    key = latency_key(space, args.runtime, args.threads)
    state: dict[str, Any] = {}
    if args.out.exists():
        state = json.loads(args.out.read_text())
        if state.get("key") != key or state.get("seed") != args.seed:
            print(f"{args.out}: another space, runtime, thread count, version or seed; starting afresh",
                  file=sys.stderr)
            state = {}
    state.update(key=key, seed=args.seed, space=args.space, machine=cpu_model(),
                 command="python " + " ".join(sys.argv))
    if "table" not in state:
        t0 = time.perf_counter()
        table = measure_table(space, args.runtime, args.threads,
                              progress=lambda d, t: print(f"table {d}/{t}", file=sys.stderr))
        state["table"] = table.to_dict()
        state["table_s"] = time.perf_counter() - t0
        _save(args.out, state)
    table = LatencyTable.from_dict(state["table"])
    rows: dict[str, Any] = state.setdefault("rows", {})
    todo = [(name, a) for name, a in candidates(space, args.candidates, args.seed) if describe(space, a) not in rows]
    for i in range(0, len(todo), args.group):
        group = todo[i:i + args.group]
        cfgs = [dict(render(space, a), nc=key["nc"]) for _, a in group]
        got = measure_many(cfgs, space.imgsz, runtime=args.runtime, threads=args.threads)
        for (name, a), lat in zip(group, got, strict=True):
            _params, flops = predict_cost(space, a)
            rows[describe(space, a)] = {"name": name, "blocks": n_blocks(space, a), "gflops": flops / 1e9,
                                        "predicted_ms": predict(table, a), "measured_ms": lat.ms,
                                        "spread": lat.spread, "noisy": lat.noisy}
        _save(args.out, state)
        print(f"measured {len(rows)}/{len(rows) + len(todo) - i - len(group)}", file=sys.stderr)
    return state


def _save(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(path)


def report(state: dict[str, Any]) -> str:
    table = LatencyTable.from_dict(state["table"])
    rows = sorted(state["rows"].items(), key=lambda kv: (kv[1]["name"].startswith("random"), kv[1]["measured_ms"]))
    err = {k: (r["predicted_ms"] - r["measured_ms"]) / r["measured_ms"] for k, r in rows}
    within = sum(abs(e) <= 0.10 for e in err.values())
    base = next(r["measured_ms"] for _, r in rows if r["name"] == "no blocks")
    lines = [f"# Latency table against measured latency: {state['space']}, {table.describe()}", "",
             f"Command: `{state['command']}`  ",
             f"Machine: {state['machine']}; versions: " + ", ".join(
                 f"{k} {v}" for k, v in state["key"].items() if k in ("torch", "onnxruntime") and v) + "  ",
             f"Table measured in {state.get('table_s', 0):.0f} s; {len(rows)} candidates measured for real "
             "(minimum of 5 after 2 warm-ups, interleaved).", "",
             f"**Within ±10%: {within}/{len(rows)} ({within / len(rows):.0%})**; median |error| "
             f"{statistics.median(abs(e) for e in err.values()):.1%}, worst {max(err.values(), key=abs):+.1%}.", "",
             "| blocks | candidates | median error | mean |error| | within ±10% |", "|---|---|---|---|---|"]
    for n in sorted({r["blocks"] for _, r in rows}):
        es = [err[k] for k, r in rows if r["blocks"] == n]
        lines.append(f"| {n} | {len(es)} | {statistics.median(es):+.1%} | "
                     f"{statistics.fmean(abs(e) for e in es):.1%} | {sum(abs(e) <= 0.1 for e in es)}/{len(es)} |")
    tau = kendall_tau([r["gflops"] for _, r in rows], [r["measured_ms"] for _, r in rows])
    tau_t = kendall_tau([r["predicted_ms"] for _, r in rows], [r["measured_ms"] for _, r in rows])
    lines += ["", f"Rank correlation with measured latency (Kendall τ-b over the {len(rows)} candidates): "
              f"GFLOPs {tau:.2f}, the table's prediction {tau_t:.2f}.", "",
              "| candidate | GFLOPs | predicted | measured | vs no blocks | error | spread |",
              "|---|---|---|---|---|---|---|"]
    for k, r in rows:
        label = k if r["name"].startswith("random") else f"{r['name']} ({k.split()[0]})"
        flag = " NOISY" if r["noisy"] else ""
        lines.append(f"| {label} | {r['gflops']:.2f} | {r['predicted_ms']:.1f} ms | {r['measured_ms']:.1f} ms | "
                     f"{r['measured_ms'] / base:.2f} | {err[k]:+.1%} | {r['spread']:.1%}{flag} |")
    lines += ["", "What this covers: one space at its own imgsz, batch 1, fp32, this runtime and thread count on this "
              "machine. It does not cover other machines (a table is only valid under its key), batch sizes above "
              "1, or GPUs.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--space", default="neck")
    ap.add_argument("--runtime", default="torch", choices=("torch", "onnxruntime"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--candidates", type=int, default=40)
    ap.add_argument("--group", type=int, default=5, help="candidates measured interleaved together")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="[default: bench/results/latency_<space>_<runtime>.json]")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    args.out = args.out or ROOT / "bench" / "results" / f"latency_{Path(args.space).stem}_{args.runtime}.json"
    state = json.loads(args.out.read_text()) if args.report_only else run(args)
    md = report(state)
    args.out.with_suffix(".md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()

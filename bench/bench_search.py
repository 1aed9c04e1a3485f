"""Search overheads, sampler efficiency, and what successive halving buys per wall-clock minute.

    python bench/bench_search.py                 # the quick parts: overhead, rejections, gate, samplers
    python bench/bench_search.py --part gate     # one part: overhead | rejections | gate | samplers | wall | hv
    python bench/bench_search.py --part wall --minutes 10            # 4a, the README main command
    python bench/bench_search.py --part hv --minutes 10 --seeds 3    # 4b
    python bench/bench_search.py --part workers --minutes 10        # 4c

1. Per-trial overhead of sampling, rendering, the budget gate (meta-device count) and the study bookkeeping,
   against one default proxy training run of the same candidate (target: overhead under 1%).
2. Rejections per second when every candidate is over budget, through the search's objective (sample + table
   gate + record; before nas.cost.gate it was sample + render + meta-device count + record: 3.0/s).
2b. The table-speed gate (nas.cost.gate) against that full meta-device count, on the same candidates in the same
   run: the decision alone, and the whole over-budget trial (TPE sample + gate + record in SQLite); target
   >= 100 rejections/s.
3. On a cheap stand-in objective over the shipped neck space (fitness from a fixed random score per choice,
   GFLOPs exact from the space's cost table), the hypervolume each sampler reaches after 50/100/200 trials,
   as a ratio to random search's in the same run (mean of 3 seeds).
4. Long parts, one search per (policy, seed) for --minutes of wall time each, on the README main command
   (`nas search --space search_spaces/neck.yaml --budget 10gflops`, default proxy unless --epochs/--imgsz/
   --synthetic say otherwise). Policies: `rungs` (this search as `nas search` runs it by default: MO-ASHA
   rungs, the default precision), `old` (the ad-hoc early stop it replaced, EarlyStop below, every epoch
   scored, same precision), `rungs-fp32` and `rungs-bf16` (rungs at that precision).
   a) `wall`: candidates seen (trained to at least one rung or stopped) and fully trained, seed 0, the three
      policies side by side, ratios to `old`;
   b) `hv`: hypervolume of the front (fitness max, GFLOPs min, reference (0, budget)) after equal wall time,
      `rungs` against `old`, over --seeds seeds.
   c) `workers`: `nas search --workers K` (K processes of cores/K threads, journal storage) for K = 1 and 2,
      candidates trained by the deadline, K = 1 as the baseline: small models use one core better than two.
   Only trials complete by the deadline count (the one running then is cut off). Each finished run is appended
   to bench/results/search.jsonl and skipped when the bench is run again with the same settings.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import random
import socket
import statistics
import time
import warnings
from pathlib import Path

import optuna

from nas.budget import Budget
from nas.cost import predict_cost
from nas.front.pareto import scored_trials
from nas.record import read
from nas.search.data import resolve_search_data
from nas.search.objective import Objective
from nas.search.options import SearchOptions
from nas.search.samplers import make_sampler
from nas.space import load_space, render, sample
from nas.storage import artifact_store

ROOT = Path(__file__).resolve().parents[1]
NECK = ROOT / "search_spaces" / "neck.yaml"
RESULTS = ROOT / "bench" / "results" / "search.jsonl"
optuna.logging.set_verbosity(optuna.logging.ERROR)
warnings.filterwarnings("ignore")


def overhead() -> None:
    from nas.train import train_and_evaluate

    space = load_space(NECK)
    opts = SearchOptions(space=str(NECK), budget=Budget(gflops=1e9), early_stop=False)
    storage = "sqlite:////tmp/nas-bench-overhead.db"
    Path("/tmp/nas-bench-overhead.db").unlink(missing_ok=True)
    study = optuna.create_study(storage=storage, directions=["maximize", "minimize"])
    data = resolve_search_data(opts)
    store = artifact_store(storage, "/tmp/nas-bench-artifacts")
    objective = Objective(space, opts, data, store)

    # time everything the objective does except the training call itself
    import nas.search.objective

    timings: dict[str, float] = {}
    real = nas.search.objective.train_and_evaluate

    def timed(cfg, **kw):
        t = time.perf_counter()
        result = real(cfg, **kw)
        timings["train"] = time.perf_counter() - t
        return result

    nas.search.objective.train_and_evaluate = timed
    try:
        t = time.perf_counter()
        study.optimize(objective, n_trials=1)
        total = time.perf_counter() - t
    finally:
        nas.search.objective.train_and_evaluate = real
    train = timings["train"]
    other = total - train
    print(f"one trial: {total:.2f} s total, proxy training {train:.2f} s, everything else {other:.3f} s "
          f"({100 * other / train:.2f}% of training; target < 1%)")
    # the same candidate again, trained alone, for a baseline in the same run
    trial = study.trials[0]
    t = time.perf_counter()
    train_and_evaluate(render(space, sample(space, optuna.trial.FixedTrial(trial.params))), data=data,
                       epochs=opts.epochs, imgsz=opts.imgsz, batch=opts.batch, seed=opts.seed)
    print(f"the same proxy run outside the search: {time.perf_counter() - t:.2f} s")


def rejections(n: int = 100) -> None:
    """Over-budget candidates through the search's objective, Optuna's TPE against nas's (same samples)."""
    import warnings

    from nas.cost.gate import predict
    from nas.storage import resolve_storage

    space = load_space(NECK)
    opts = SearchOptions(space=str(NECK), budget=Budget(gflops=0.001), early_stop=False)
    t = time.perf_counter()
    for gw in space.width_multiple:  # the cost tables, once per space and multiples
        predict(space, sample(space, optuna.trial.FixedTrial(_params_at_width(space, gw))))
    print(f"cost tables built once in {time.perf_counter() - t:.2f} s")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        plain = optuna.samplers.TPESampler(seed=0, multivariate=True, group=True, n_startup_trials=8)
    rates = {}
    for name, sampler in (("Optuna TPESampler", plain), ("nas tpe (one read of the study per candidate)",
                                                         make_sampler("tpe", 0))):
        path = Path("/tmp/nas-bench-reject.db")
        path.unlink(missing_ok=True)
        storage = resolve_storage(f"sqlite:///{path}")  # opened the way the search opens it
        study = optuna.create_study(storage=storage, directions=["maximize", "minimize"], sampler=sampler)
        objective = Objective(space, opts, None, artifact_store(f"sqlite:///{path}", "/tmp/nas-bench-artifacts"))
        t = time.perf_counter()
        study.optimize(objective, n_trials=n)
        dt = time.perf_counter() - t
        rates[name] = n / dt
        print(f"{name}: {n} over-budget candidates rejected by the search's objective in {dt:.2f} s: "
              f"{n / dt:.1f} rejections/s ({1000 * dt / n:.0f} ms each, SQLite storage)")
    first, second = rates.values()
    print(f"ratio: {second / first:.2f}x")


def gate_rejections(n: int = 200) -> None:
    from nas.cost import count
    from nas.cost.gate import gate

    space = load_space(NECK)
    budget = Budget(gflops=0.001)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    archs = [sample(space, study.ask()) for _ in range(n)]
    t = time.perf_counter()
    gate(space, archs[0], budget)
    for gw in space.width_multiple:  # the tables, once per space and multiples
        gate(space, sample(space, optuna.trial.FixedTrial(_params_at_width(space, gw))), budget)
    print(f"cost tables for {len(space.width_multiple)} widths built once in {time.perf_counter() - t:.2f} s")

    k = n // 10  # the full count is slow: time a tenth of the candidates
    t = time.perf_counter()
    for arch in archs[:k]:
        c = count(render(space, arch), space.imgsz)
        assert budget.exceeded(c.gflops, c.params)
    full = k / (time.perf_counter() - t)
    t = time.perf_counter()
    for arch in archs:
        assert gate(space, arch, budget).over_budget
    table = n / (time.perf_counter() - t)
    print(f"decision only: full count {full:.1f}/s, table gate {table:.0f}/s, ratio {table / full:.0f}x")

    # the whole over-budget trial as the search runs it: TPE sample, gate, the trial record; SQLite opened the
    # way the search opens it (WAL, no fsync per commit), and in memory to show what the storage costs
    from nas.storage import resolve_storage

    for name, use_table, where in (("full count", False, "sqlite"), ("table gate", True, "sqlite"),
                                   ("full count", False, "memory"), ("table gate", True, "memory")):
        path = Path(f"/tmp/nas-bench-gate-{int(use_table)}.db")
        path.unlink(missing_ok=True)
        storage = resolve_storage(f"sqlite:///{path}") if where == "sqlite" else None
        study = optuna.create_study(storage=storage, directions=["maximize", "minimize"],
                                    sampler=make_sampler("tpe", 0))

        def objective(trial, use_table=use_table):
            arch = sample(space, trial)
            if use_table:
                result = gate(space, arch, budget)
                gflops, params = result.gflops, result.params
            else:
                c = count(render(space, arch), space.imgsz)
                gflops, params = c.gflops, c.params
            attrs = {"choices": arch.short(), "arch": arch.to_dict(), "gflops": round(gflops, 6),
                     "params": params, "seed": 0, "baseline": False, "over_budget": True, "outcome": "rejected"}
            for key, value in attrs.items():
                trial.set_user_attr(key, value)
            for key, value in budget.violations(gflops, params).items():
                trial.set_constraint(key, value)
            return 0.0, gflops

        m = 40
        t = time.perf_counter()
        study.optimize(objective, n_trials=m)
        dt = time.perf_counter() - t
        print(f"whole trial, {name}, {where}: {m / dt:.1f} rejections/s ({1000 * dt / m:.0f} ms each, TPE)")
    rejection_cost_by_size(space, budget)


def rejection_cost_by_size(space, budget, sizes: tuple[int, ...] = (50, 100, 200, 400)) -> None:
    """Where a rejection's time goes as the study grows: the sampler alone (in memory, no storage) against
    the same trial in SQLite, for TPE and for random sampling (whose own cost is nil: the storage floor)."""
    from nas.cost.gate import gate
    from nas.storage import resolve_storage

    print("rejection cost as the study grows (table gate; ms per rejected candidate at that many trials):")
    print(f"  {'sampler, storage':<18}" + "".join(f"{f'n={n}':>9}" for n in sizes))
    for sampler_name in ("tpe", "random"):
        for where in ("memory", "sqlite"):
            path = Path(f"/tmp/nas-bench-size-{sampler_name}.db")
            path.unlink(missing_ok=True)
            storage = resolve_storage(f"sqlite:///{path}") if where == "sqlite" else None
            study = optuna.create_study(storage=storage, directions=["maximize", "minimize"],
                                        sampler=make_sampler(sampler_name, 0))

            def objective(trial):
                result = gate(space, sample(space, trial), budget)
                for key, value in budget.violations(result.gflops, result.params).items():
                    trial.set_constraint(key, value)
                return 0.0, result.gflops

            row, done = [], 0
            for n in sizes:
                study.optimize(objective, n_trials=n - done - 10)  # grow the study to 10 short of n
                t = time.perf_counter()
                study.optimize(objective, n_trials=10)  # then time 10 rejections around n
                row.append(100 * (time.perf_counter() - t))
                done = n
            print(f"  {sampler_name + ', ' + where:<18}" + "".join(f"{ms:9.1f}" for ms in row))


def _params_at_width(space, gw: float) -> dict:
    from nas.space import baseline, trial_params

    arch = baseline(space)
    arch.width_multiple = gw
    return trial_params(space, arch)


def samplers(checkpoints=(50, 100, 200), seeds=(0, 1, 2)) -> None:
    space = load_space(NECK)
    rng = random.Random(1234)
    # a fixed "true quality" per (point, block, hyperparameter setting) and a width bonus: a stand-in landscape
    quality: dict[str, float] = {}

    def q(key: str) -> float:
        if key not in quality:
            quality[key] = rng.gauss(0, 0.03)
        return quality[key]

    def objective(trial):
        arch = sample(space, trial)
        params, flops = predict_cost(space, arch)
        fit = 0.30 + 0.08 * (arch.width_multiple - 0.25) / 0.125
        for p, choice in arch.choices.items():
            fit += q(f"{p}:{sorted(choice.items())}")
        return fit, flops / 1e9

    ref = (0.0, 20.0)
    results: dict[str, dict[int, list[float]]] = {}
    for name in ("random", "tpe", "nsga2", "gp"):
        results[name] = {c: [] for c in checkpoints}
        for seed in seeds if name != "gp" else seeds[:1]:  # GP costs about a second per trial
            n = max(checkpoints) if name != "gp" else 100
            study = optuna.create_study(directions=["maximize", "minimize"], sampler=make_sampler(name, seed))
            t = time.perf_counter()
            study.optimize(objective, n_trials=n)
            per_trial = (time.perf_counter() - t) / n
            for c in checkpoints:
                if c <= n:
                    results[name][c].append(_hypervolume(study.trials[:c], ref))
        results[name]["s/trial"] = [per_trial]
    print(f"hypervolume (fitness max, GFLOPs min; reference {ref}) as a ratio to random search, mean of "
          f"{len(seeds)} seeds")
    print(f"{'sampler':8s} " + " ".join(f"{c:>8d}" for c in checkpoints) + f" {'s/trial':>8s}")
    for name, by_c in results.items():
        cells = []
        for c in checkpoints:
            if by_c[c]:
                cells.append(f"{statistics.mean(by_c[c]) / statistics.mean(results['random'][c]):8.3f}")
            else:
                cells.append(f"{'-':>8s}")
        print(f"{name:8s} " + " ".join(cells) + f" {by_c['s/trial'][0]:8.3f}")


def _hypervolume(trials, ref) -> float:
    return hypervolume([(t.values[0], t.values[1]) for t in trials if t.values is not None], ref)


# ------------------------------------------------------------------- the early stop rungs replaced (baseline)


class EarlyStop:
    """The search's early stop before successive halving (nas 0.x), kept here as the bench's baseline policy.

    From half of the run on, at epoch e, it stops a candidate whose fitness is below `ratio` x the best fitness
    at epoch e of finished, trained trials that cost no more GFLOPs (at least `min_references` of them, and
    only once that best is above `floor`, where scores stop being noise). Needs every epoch scored.
    """

    def __init__(self, study: optuna.Study, gflops: float, ratio: float, epochs: int, floor: float = 0.02,
                 min_references: int = 2):
        self.study = study
        self.gflops = gflops
        self.ratio = ratio
        self.floor = floor
        self.first_epoch = max(2, math.ceil(epochs / 2))
        self.min_references = min_references
        self.reason = ""

    def should_stop(self, record: dict) -> bool:
        epoch = int(record["epoch"])
        if epoch < self.first_epoch:
            return False
        mine = float(record.get("fitness", 0.0))
        refs = []
        for t in scored_trials(self.study):
            r = read(t)
            if (math.inf if r.gflops is None else r.gflops) > self.gflops:
                continue
            refs += [(float(h["fitness"]), t.number) for h in r.history
                     if int(h.get("epoch", -1)) == epoch and "fitness" in h]
        if len(refs) < self.min_references:
            return False
        best, number = max(refs)
        if best >= self.floor and mine < self.ratio * best:
            self.reason = (f"fitness {mine:.4f} at epoch {epoch} < {self.ratio:g} x {best:.4f} of trial {number}, "
                           f"which costs no more")
            return True
        return False


class OldEarlyStopObjective(Objective):
    """The objective with the old policy: every epoch scored, EarlyStop(ratio 0.6, floor 0.02) instead of rungs."""

    def stop_rule(self, trial, gflops: float):
        return EarlyStop(trial.study, gflops, 0.6, self.opts.epochs, 0.02) if self.opts.early_stop else None

    def eval_epochs(self) -> None:
        return None


DEFAULTS = SearchOptions(space=str(NECK), budget=Budget(gflops=10.0))  # what `nas search` runs by default
# policy -> (precision, objective); `rungs` and `old` both train at the search's default precision, so they
# differ only in how they stop; the two precision policies show what precision alone changes
POLICIES = {"rungs": (DEFAULTS.precision, Objective), "old": (DEFAULTS.precision, OldEarlyStopObjective),
            "rungs-fp32": ("fp32", Objective), "rungs-bf16": ("bf16", Objective)}


class Deadline(Exception):  # noqa: N818 - the name says what happened
    """The wall-time limit of a timed search, raised from the batch callback to cut the running trial off."""


def timed_search(policy: str, seed: int, minutes: float, proxy: dict, threads: int) -> dict:
    """One search on the README main command for `minutes` of wall time under `policy`; its counts and front."""
    import torch

    import nas.search.run as search_run
    from nas.search.options import Progress

    torch.set_num_threads(threads)
    precision, objective_cls = POLICIES[policy]
    path = Path(f"/tmp/nas-bench-search/{policy}-s{seed}-{os.getpid()}.db")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    budget = Budget(gflops=10.0)
    opts = SearchOptions(space=str(NECK), budget=budget, trials=10**6, storage=f"sqlite:///{path}", seed=seed,
                         epochs=proxy["epochs"], imgsz=proxy["imgsz"], precision=precision,
                         synthetic_train=proxy["synthetic"][0], synthetic_val=proxy["synthetic"][1])
    space = search_run.prepare(opts)
    data = resolve_search_data(opts, space)  # generated and cached before the clock starts
    start, started = time.monotonic(), datetime.datetime.now()
    deadline = start + 60 * minutes

    def batch_end(_epoch, _i, _nb) -> None:
        if time.monotonic() > deadline:
            raise Deadline()

    search_run.Objective, real = objective_cls, search_run.Objective
    optuna.logging.disable_default_handler()  # the trial cut off at the deadline is no news
    try:
        search_run.run_search(opts, Progress(batch_end=batch_end), space=space, data_spec=data)
    except Deadline:
        pass
    finally:
        search_run.Objective = real
    wall = time.monotonic() - start
    study = optuna.load_study(study_name=space.name, storage=opts.storage)
    cutoff = started + datetime.timedelta(minutes=minutes)
    records = [read(t) for t in study.get_trials(deepcopy=False)
               if t.state.name == "COMPLETE" and t.datetime_complete <= cutoff]
    outcome = [r.outcome.value if r.outcome else "" for r in records]
    points = [(r.values[0], r.values[1]) for r in records
              if r.values and not r.over_budget and all(v <= 0 for v in r.constraints.values())]
    path.unlink(missing_ok=True)
    return {"seen": outcome.count("trained") + outcome.count("stopped"), "trained": outcome.count("trained"),
            "stopped": outcome.count("stopped"), "rejected": outcome.count("rejected"),
            "reused": outcome.count("reused"), "hv": hypervolume(points, (0.0, budget.gflops)),
            "points": sorted(points, key=lambda p: p[1]), "wall_s": round(wall, 1), "precision": precision}


def hypervolume(points: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    """2-D hypervolume of (fitness max, GFLOPs min) points against ref (fitness_ref, gflops_ref)."""
    hv, best_f = 0.0, ref[0]
    front = []
    for g, f in sorted((g, f) for f, g in points if g < ref[1]):
        if f > best_f:
            front.append((g, f))
            best_f = f
    for k, (g, f) in enumerate(front):
        g_next = front[k + 1][0] if k + 1 < len(front) else ref[1]
        hv += (g_next - g) * (f - ref[0])
    return hv


def _load_results() -> list[dict]:
    if not RESULTS.is_file():
        return []
    return [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]


def _commit() -> str:
    """The code's commit, recorded with each timed run."""
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parents[1],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def timed_part(part: str, policies: list[str], seeds: list[int], minutes: float, proxy: dict, threads: int) -> None:
    """Run the (policy, seed) searches missing from the results file, then print the table for these settings."""
    settings = {"minutes": minutes, "proxy": proxy, "threads": threads, "space": "neck", "budget": "10gflops"}
    for seed in seeds:
        for policy in policies:
            key = {**settings, "policy": policy, "seed": seed, "precision": POLICIES[policy][0]}
            if any(all(r.get(k) == v for k, v in key.items()) for r in _load_results()):
                continue
            print(f"running {policy} seed {seed} for {minutes:g} min ...", flush=True)
            out = timed_search(policy, seed, minutes, proxy, threads)
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            with RESULTS.open("a") as f:
                f.write(json.dumps({**key, **out, "host": socket.gethostname(), "cpus": os.cpu_count(),
                                    "commit": _commit(),
                                    "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")
    rows = {p: [r for r in _load_results() if all(r.get(k) == v for k, v in settings.items())
                and r["policy"] == p and r["seed"] in seeds and r.get("precision") == POLICIES[p][0]]
            for p in policies}
    base = rows.get("old") or []
    print(f"{part}: {minutes:g} min per search, proxy {proxy}, {threads} thread(s); mean over seeds "
          f"{seeds}; ratios to `old` in brackets")
    print(f"{'policy':11s} {'runs':>4s} {'seen':>12s} {'trained':>12s} {'stopped':>7s} {'rejected':>8s} "
          f"{'hypervolume':>16s}")
    for p, rs in rows.items():
        if not rs:
            print(f"{p:11s} no run")
            continue
        cells = []
        for k in ("seen", "trained", "hv"):
            mean = statistics.mean(r[k] for r in rs)
            ref = statistics.mean(r[k] for r in base) if base else 0.0
            ratio = f"({mean / ref:.2f}x)" if ref else "(-)"
            cells.append(f"{mean:.4g} {ratio}" if k == "hv" else f"{mean:.1f} {ratio}")
        sd = f"±{statistics.stdev(r['hv'] for r in rs):.3f}" if len(rs) > 1 else ""
        print(f"{p:11s} {len(rs):4d} {cells[0]:>12s} {cells[1]:>12s} {statistics.mean(r['stopped'] for r in rs):7.1f} "
              f"{statistics.mean(r['rejected'] for r in rs):8.1f} {cells[2] + sd:>16s}")


def workers_part(minutes: float, counts: tuple[int, ...] = (1, 2)) -> None:
    """The README main command as users run it, `nas search` in a subprocess, with K worker processes sharing
    the cores (torch threads = cores / K each) on a journal storage, for `minutes` each, alternated;
    candidates completed by the deadline, K=1 as the baseline."""
    import datetime
    import subprocess
    import tempfile
    from collections import Counter

    from nas.record import read
    from nas.storage import resolve_storage

    print(f"workers: `nas search --space neck --budget 10gflops --workers K --storage journal:... --timeout "
          f"{minutes:g}m`, default proxy; candidates completed within {minutes:g} min ({os.cpu_count()} cores)")
    seen = {}
    for k in counts:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"journal:{tmp}/nas.journal"
            subprocess.run(["nas", "search", "--space", str(NECK), "--budget", "10gflops", "--workers", str(k),
                            "--storage", url, "--timeout", f"{minutes:g}m", "--trials", "10000"],
                           cwd=tmp, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            trials = optuna.load_study(study_name="neck", storage=resolve_storage(url)).get_trials(deepcopy=False)
        t0 = min(t.datetime_start for t in trials if t.datetime_start)
        cut = t0 + datetime.timedelta(minutes=minutes)
        done = Counter(read(t).outcome.value for t in trials
                       if t.datetime_complete and t.datetime_complete <= cut and read(t).outcome)
        seen[k] = done["trained"] + done["stopped"]
        print(f"  --workers {k} ({max(1, (os.cpu_count() or 1) // k)} thread(s) each): {seen[k]} trained "
              f"({seen[k] / seen[counts[0]]:.2f}x), {done['rejected']} rejected, {done['reused']} reused", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=["overhead", "rejections", "gate", "samplers", "wall", "hv", "workers",
                                           "all"], default="all")
    parser.add_argument("--minutes", type=float, default=10.0, help="wall time per search (parts wall, hv)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per policy (part hv)")
    parser.add_argument("--epochs", type=int, default=DEFAULTS.epochs, help="proxy epochs (parts wall, hv)")
    parser.add_argument("--imgsz", type=int, default=DEFAULTS.imgsz, help="proxy image size (parts wall, hv)")
    parser.add_argument("--synthetic", type=int, nargs=2, default=(DEFAULTS.synthetic_train, DEFAULTS.synthetic_val),
                        metavar=("TRAIN", "VAL"), help="synthetic train/val images (parts wall, hv)")
    parser.add_argument("--policies", nargs="+", choices=list(POLICIES), default=None,
                        help="policies to run (parts wall, hv) [default: all for wall, rungs and old for hv]")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (parts wall, hv)")
    args = parser.parse_args()
    part = args.part
    proxy = {"epochs": args.epochs, "imgsz": args.imgsz, "synthetic": list(args.synthetic)}
    if part == "wall":
        timed_part("wall", args.policies or list(POLICIES), [0], args.minutes, proxy, args.threads)
    if part == "hv":
        timed_part("hv", args.policies or ["rungs", "old"], list(range(args.seeds)), args.minutes, proxy, args.threads)
    if part == "workers":
        workers_part(args.minutes)
    if part in ("overhead", "all"):
        overhead()
    if part in ("rejections", "all"):
        rejections()
    if part in ("gate", "all"):
        gate_rejections()
    if part in ("samplers", "all"):
        samplers()


if __name__ == "__main__":
    main()

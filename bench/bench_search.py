"""Search overheads and sampler efficiency.

    python bench/bench_search.py                 # all parts
    python bench/bench_search.py --part gate     # one part: overhead | rejections | gate | samplers

1. Per-trial overhead of sampling, rendering, the budget gate (meta-device count) and the study bookkeeping,
   against one default proxy training run of the same candidate (target: overhead under 1%).
2. Rejections per second when every candidate is over budget (sample + render + count + record).
2b. The table-speed gate (nas.gate) against that full meta-device count, on the same candidates in the same
   run: the decision alone, and the whole over-budget trial (TPE sample + gate + record in SQLite); target
   >= 100 rejections/s.
3. On a cheap stand-in objective over the shipped neck space (fitness from a fixed random score per choice,
   GFLOPs exact from the space's cost table), the hypervolume each sampler reaches after 50/100/200 trials,
   as a ratio to random search's in the same run (mean of 3 seeds).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import warnings
from pathlib import Path

import optuna

from nas.budget import Budget
from nas.cost import predict_cost
from nas.samplers import make_sampler
from nas.search import Objective, SearchOptions, resolve_search_data
from nas.space import load_space, render, sample
from nas.storage import artifact_store

ROOT = Path(__file__).resolve().parents[1]
NECK = ROOT / "search_spaces" / "neck.yaml"
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
    import nas.train

    timings: dict[str, float] = {}
    real = nas.train.train_and_evaluate

    def timed(cfg, **kw):
        t = time.perf_counter()
        result = real(cfg, **kw)
        timings["train"] = time.perf_counter() - t
        return result

    nas.train.train_and_evaluate = timed
    try:
        t = time.perf_counter()
        study.optimize(objective, n_trials=1)
        total = time.perf_counter() - t
    finally:
        nas.train.train_and_evaluate = real
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


def rejections(n: int = 40) -> None:
    space = load_space(NECK)
    opts = SearchOptions(space=str(NECK), budget=Budget(gflops=0.001), early_stop=False)
    storage = "sqlite:////tmp/nas-bench-reject.db"
    Path("/tmp/nas-bench-reject.db").unlink(missing_ok=True)
    study = optuna.create_study(storage=storage, directions=["maximize", "minimize"],
                                sampler=make_sampler("tpe", 0))
    objective = Objective(space, opts, None, artifact_store(storage, "/tmp/nas-bench-artifacts"))
    t = time.perf_counter()
    study.optimize(objective, n_trials=n)
    dt = time.perf_counter() - t
    print(f"{n} over-budget candidates rejected in {dt:.2f} s: {n / dt:.1f} rejections/s "
          f"({1000 * dt / n:.0f} ms each, SQLite storage)")


def gate_rejections(n: int = 200) -> None:
    from nas.cost import count
    from nas.gate import gate

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
    """2-D hypervolume of (maximise f, minimise g) points against ref (f_ref, g_ref)."""
    pts = sorted((t.values[1], t.values[0]) for t in trials if t.values is not None)
    hv, best_f = 0.0, ref[0]
    front = []
    for g, f in pts:
        if f > best_f:
            front.append((g, f))
            best_f = f
    for k, (g, f) in enumerate(front):
        g_next = front[k + 1][0] if k + 1 < len(front) else ref[1]
        hv += max(0.0, g_next - g) * max(0.0, f - ref[0])
    return hv


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=["overhead", "rejections", "gate", "samplers", "all"], default="all")
    part = parser.parse_args().part
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

"""Does fp16 AMP rank candidates like fp32 on a GPU? The check issue 13 asks before `--precision auto` may pick a
low precision: the Kendall τ between low-precision (fp16 AMP on a GPU, bf16 on a CPU) and fp32 proxy scores at
the same seed must be at least fp32's own seed-against-seed τ. It failed on an H200, so auto is fp32 on CUDA.

    python bench/bench_gpu_precision.py --device cuda --jobs 8 --out bench/results/gpu/precision.jsonl
    python bench/bench_gpu_precision.py --report --out bench/results/gpu/precision.jsonl

Candidates: the 15 of bench/bench_fidelity.py (yolov5n, yolov5s and 13 neck models). Proxy: the search's default
(4 epochs, 512 synthetic images, 128 px, batch 8). Runs: fp32 seed 0, low seed 0, fp32 seed 1 for each, several
processes sharing the GPU (the proxy is bound by the host at batch 8, so they barely slow each other). The report
also ranks both against the CPU reference runs in bench/results/fidelity.jsonl (fp32, 32 epochs, 256 images).
Finished runs are appended to --out and skipped when the command runs again.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

RUNS = (("fp32", 0), ("low", 0), ("fp32", 1))  # low: fp16 AMP on a GPU, bf16 on a CPU with native bf16


def _settings(precision: str, smoke: bool = False):
    from dataclasses import replace

    from bench_fidelity import SMOKE, Settings

    from nas.search.options import SearchOptions

    if smoke:  # the plumbing only: tiny runs (--smoke)
        return replace(SMOKE, epochs=1, precision=precision)
    o = SearchOptions.__dataclass_fields__
    return Settings(epochs=o["epochs"].default, imgsz=o["imgsz"].default, batch=o["batch"].default,
                    n_train=o["synthetic_train"].default, n_val=o["synthetic_val"].default, precision=precision)


def _one(key: str, model_yaml: str, precision: str, seed: int, device: str, smoke: bool) -> dict:
    import torch
    from bench_fidelity import _data

    from nas.audit.jobs import train_job

    torch.set_num_threads(2)
    s = _settings(("fp16" if device.startswith("cuda") else "bf16") if precision == "low" else precision, smoke)
    run = train_job(model_yaml, _data({}, s), epochs=s.epochs, imgsz=s.imgsz, batch=s.batch, seed=seed,
                    device=device, **s.trainer_kwargs())
    from nas.train import resolve_precision

    return {"candidate": key, "precision": precision, "resolved": resolve_precision(s.precision, device).name,
            "seed": seed, "device": device, "fitness": run["fitness"], "wall_time": run["wall_time"],
            "status": run["status"]}


def run_all(args) -> None:
    import torch
    from bench_fidelity import _data, candidates

    out = Path(args.out)
    done = {_key(d) for d in _load(out)}
    nc = _data({}, _settings("fp32", args.smoke)).nc  # generate the synthetic set once, before the workers
    cands = candidates(nc)[: 2 if args.smoke else None]
    todo = [(c, p, s) for c in cands for p, s in RUNS if (c.key, p, s) not in done]
    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    print(f"{len(todo)} runs on {name} with {args.jobs} processes", flush=True)
    t0 = time.perf_counter()
    # spawn, not fork: a child forked from a process that touched CUDA cannot use it
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_one, c.key, c.model_yaml, p, s, args.device, args.smoke) for c, p, s in todo]
        for f in as_completed(futures):
            doc = f.result()
            with open(out, "a") as fh:
                fh.write(json.dumps(doc) + "\n")
            print(f"  {doc['candidate']:24} {doc['resolved']} seed {doc['seed']}: fitness {doc['fitness']:.4f} "
                  f"({doc['wall_time']:.0f} s)", flush=True)
    print(f"all runs in {time.perf_counter() - t0:.0f} s", flush=True)


def _key(doc: dict) -> tuple[str, str, int]:
    """(candidate, "fp32" | "low", seed) of a finished run; early runs named the low precision "auto"."""
    return doc["candidate"], "fp32" if doc["resolved"] == "fp32" else "low", doc["seed"]


def _load(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def report(args) -> None:
    from bench_fidelity import RESULTS

    from nas.audit.stats import kendall_tau

    docs = _load(Path(args.out))
    runs = {_key(d): d["fitness"] for d in docs}
    low = next((d["resolved"] for d in docs if _key(d)[1] == "low"), "low")
    keys = sorted({k[0] for k in runs if all((k[0], p, s) in runs for p, s in RUNS)})
    col = {(p, s): [runs[(k, p, s)] for k in keys] for p, s in RUNS}
    ref, cpu = {}, {}
    default = _settings("bf16")
    for d in _load(RESULTS):
        if d.get("role") == "reference" and d.get("seed") == 0:
            ref[d["candidate"]] = d["fitness"]
        st = d.get("settings") or {}
        if d.get("role") == "proxy" and d.get("seed") == 0 and (st.get("epochs"), st.get("n_train"), st.get("imgsz"),
                                                                  st.get("precision")) == (
                default.epochs, default.n_train, default.imgsz, "bf16"):
            cpu[d["candidate"]] = d["fitness"]
    print(f"{len(keys)} candidates with all three runs ({args.out})")
    tau_low = kendall_tau(col[("low", 0)], col[("fp32", 0)])
    tau_seed = kendall_tau(col[("fp32", 0)], col[("fp32", 1)])
    verdict = "ranks like fp32" if tau_low >= tau_seed else "does NOT rank like fp32"
    print(f"{low} vs fp32, same seed: τ {tau_low:.2f}; fp32 seed 0 vs seed 1: τ {tau_seed:.2f} -> {low} "
          f"{verdict}")
    for label, other in (("the CPU reference", ref), ("the same proxy on the CPU (bf16, seed 0)", cpu)):
        shared = [k for k in keys if k in other]
        if len(shared) < 3:
            continue
        for p, s in RUNS:
            tau = kendall_tau([runs[(k, p, s)] for k in shared], [other[k] for k in shared])
            print(f"{low if p == 'low' else p} seed {s} on the GPU vs {label} ({len(shared)} candidates): τ {tau:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--jobs", type=int, default=8, help="processes sharing the device")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "gpu" / "precision.jsonl"))
    ap.add_argument("--report", action="store_true", help="only print the τ table from --out")
    ap.add_argument("--smoke", action="store_true", help="2 candidates, 1 epoch at 64 px: check the plumbing")
    args = ap.parse_args()
    if not args.report:
        run_all(args)
    report(args)


if __name__ == "__main__":
    main()

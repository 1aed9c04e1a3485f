"""How close is nas.train.memory's estimate to what a proxy run really uses?

Each case runs in a fresh process: import torch and nas, note the resident memory, run one proxy epoch
(train_and_evaluate) and read the peak resident memory (ru_maxrss). The measured need is peak minus the
resident memory before the run; the ratio estimate / measured should be near 1 and above it rather than below
(the check refuses only what its estimate says cannot fit).

    python bench/bench_memory.py                 # writes bench/results/memory.md
    python bench/bench_memory.py --quick         # two small cases, prints only
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys
import torch
from nas.data import SyntheticConfig
from nas.model import load_cfg
from nas.train import train_and_evaluate
from nas.train.memory import estimate_proxy_memory
torch.set_num_threads(2)
model, imgsz, batch, n_train, n_val, precision = json.loads(sys.argv[1])
cfg = load_cfg(model) if not model.endswith(".json") else json.load(open(model))
data = SyntheticConfig(n_train=n_train, n_val=n_val, size=imgsz)
from nas.data import synthetic_dataset
synthetic_dataset(data)  # the images on disk, so the measured run only reads them
train_and_evaluate("yolov5n", SyntheticConfig(n_train=8, n_val=8, size=64), epochs=1, imgsz=64, batch=2)  # warm
import gc; gc.collect()
before = int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()
peak0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
r = train_and_evaluate(cfg, data, epochs=1, imgsz=imgsz, batch=batch, precision=precision)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
est = estimate_proxy_memory(cfg, 6, imgsz, batch, n_train, n_val)
print(json.dumps({"before": before, "peak0": peak0, "peak": peak, "estimate": est.total, "status": r.status,
                  "parts": [est.images, est.batch, est.activations, est.model]}))
"""

CASES = [  # model, imgsz, batch, n_train, n_val, precision
    ("yolov5n", 128, 8, 32, 8, "fp32"),
    ("yolov5n", 256, 8, 32, 8, "fp32"),
    ("yolov5n", 512, 8, 16, 8, "fp32"),
    ("yolov5n", 512, 8, 16, 8, "bf16"),
    ("yolov5n", 256, 32, 64, 8, "fp32"),
    ("yolov5s", 320, 8, 16, 8, "fp32"),
    ("neck-biformer", 256, 8, 32, 8, "fp32"),
]


def neck_biformer(tmp: Path) -> str:
    """A neck-space candidate with BiFormer at P3, P4, P5 at width 0.25, as a JSON model file."""
    from nas.space import Architecture, load_space, render

    space = load_space("search_spaces/neck.yaml")
    choices = {p.name: {"block": "BiFormer", "num_heads": 4, "n_win": 8, "topk": 4, "side_dwconv": 3}
               for p in space.points}
    cfg = render(space, Architecture(0.33, 0.25, choices))
    path = tmp / "neck_biformer.json"
    path.write_text(json.dumps(cfg))
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two small cases, print only")
    ap.add_argument("--out", default="bench/results/memory.md")
    args = ap.parse_args()
    tmp = Path("/tmp/nas-bench-memory")
    tmp.mkdir(exist_ok=True)
    cases = CASES[:2] if args.quick else CASES
    rows = []
    for model, imgsz, batch, n_train, n_val, precision in cases:
        name = neck_biformer(tmp) if model == "neck-biformer" else model
        out = subprocess.run([sys.executable, "-c", CHILD, json.dumps([name, imgsz, batch, n_train, n_val,
                                                                       precision])],
                             capture_output=True, text=True)
        if out.returncode:
            sys.exit(f"{model} {imgsz} {precision}: {out.stderr.strip().splitlines()[-1]}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        measured = r["peak"] - r["before"]
        ratio = r["estimate"] / measured if measured > 0 else float("nan")
        row = (f"| {model} | {imgsz} | {batch} | {n_train}/{n_val} | {precision} | {measured / 2**20:,.0f} | "
               f"{r['estimate'] / 2**20:,.0f} | {ratio:.2f} |")
        print(row, flush=True)
        rows.append(row)
    if args.quick:
        return
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    text = "\n".join([
        "# Memory estimate against real proxy runs",
        "",
        f"`python bench/bench_memory.py` on {cpu}, torch {__import__('torch').__version__}, 2 threads.",
        "",
        "Each row is a fresh process: one proxy epoch to make the data, then the measured run; *measured* is",
        "the peak resident memory (ru_maxrss) minus the resident memory just before the measured run,",
        "*estimate* is `nas.train.memory.estimate_proxy_memory` for the same model, size, batch and split sizes.",
        "The check refuses a run only when the estimate exceeds the memory available, so a ratio above 1",
        "errs towards refusing early; below 1 it would let through a run a little too big for the machine.",
        "Not covered: CUDA memory (the check reads host memory only), data YAMLs with images larger than",
        "imgsz (decoding reads the original size).",
        "",
        "| model | imgsz | batch | images train/val | precision | measured MiB | estimate MiB | estimate/measured |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ])
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Time to count params + GFLOPs on the meta device against one real CPU forward pass, in the same run.

    python bench/bench_cost.py            # yolov5s and yolov5l at 640

The search counts every sampled candidate before deciding whether to train it, so counting must be cheap:
target well under 0.2 s for a yolov5s-size model and far less than a real forward.
"""

from __future__ import annotations

import statistics
import time

import torch

from nas.cost import count
from nas.model import build_model


def best_of(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


def main() -> None:
    torch.set_num_threads(torch.get_num_threads())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'model':8s} {'GFLOPs':>8s} {'count (build+count) s':>22s} {'real forward s':>15s} {'ratio':>7s}")
    count("yolov5n", 640)  # warm-up: imports, first-call dispatch caches
    for name in ("yolov5s", "yolov5l"):
        c = count(name, 640)
        t_count, _ = best_of(lambda n=name: count(n, 640))
        model = build_model(name).eval()
        x = torch.zeros(1, 3, 640, 640)
        with torch.no_grad():
            model(x)
            t_fwd, _ = best_of(lambda m=model, t=x: m(t), repeat=3)
        print(f"{name:8s} {c.gflops:8.2f} {t_count:22.3f} {t_fwd:15.3f} {t_count / t_fwd:7.2f}")


if __name__ == "__main__":
    main()

"""Forward+backward time of each attention block on CPU against a YOLOv5 3x3 Conv of the same width.

    python bench/bench_blocks.py                      # 256 channels, 40x40 and 80x80, batch 1
    python bench/bench_blocks.py --channels 128 --sizes 20x20 40x40 --batch 2

Every module is timed in the same process, round-robin (one step of each in turn, repeated), so drift in
machine load hits all of them alike; the figure is the median step. GFLOPs are one forward at that size
(2 x MACs of every conv and matrix product), counted on the meta device. Results and the command that
produced them are in blocks/README.md.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import blocks


def conv_reference(channels: int) -> nn.Module:
    """YOLOv5's Conv(c, c, 3): conv without bias, BatchNorm, SiLU."""
    conv = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(channels), nn.SiLU())


def forward_gflops(module: nn.Module, shape: tuple[int, ...]) -> float:
    """GFLOPs of one forward, counted on a meta copy of `module` (the real one is left untouched)."""
    m = copy.deepcopy(module).to("meta").eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        m(torch.empty(*shape, device="meta"))
    return counter.get_total_flops() / 1e9


def step(m: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> float:
    """Seconds for one forward+backward of m on x (input gradient included, as inside a network)."""
    xi = x.clone().requires_grad_(True)
    t0 = time.perf_counter()
    m(xi).backward(grad)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--sizes", nargs="+", default=["40x40", "80x80"], help="feature-map sizes HxW")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7, help="timed steps per module (after 2 warm-up)")
    args = parser.parse_args()
    torch.manual_seed(0)
    c = args.channels
    modules = {"Conv 3x3": conv_reference(c)}
    for name in blocks.REGISTRY:
        modules[name] = blocks.build(name, c)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, channels {c}, batch {args.batch}, "
          f"fp32, train mode, forward+backward, median of {args.repeats}")
    for size in args.sizes:
        h, w = (int(v) for v in size.lower().split("x"))
        shape = (args.batch, c, h, w)
        x = torch.randn(*shape)
        grad = torch.randn(*shape)
        times: dict[str, list[float]] = {name: [] for name in modules}

        for i in range(args.repeats + 2):
            for name, m in modules.items():
                m.zero_grad(set_to_none=True)
                dt = step(m, x, grad)
                if i >= 2:
                    times[name].append(dt)
        base = statistics.median(times["Conv 3x3"])
        print(f"\n{h}x{w}")
        print(f"{'block':<16}{'ms':>10}{'x Conv':>9}{'GFLOPs/img':>12}{'params':>10}")
        for name, m in modules.items():
            ms = statistics.median(times[name]) * 1e3
            gf = forward_gflops(m, (1, c, h, w))
            params = sum(p.numel() for p in m.parameters())
            print(f"{name:<16}{ms:>10.1f}{ms / (base * 1e3):>9.2f}{gf:>12.3f}{params:>10,}")


if __name__ == "__main__":
    main()

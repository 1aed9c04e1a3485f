"""Proxy-training speed, each part with its baseline in the same run:
(p) one training step (forward + YOLOv5 loss + backward + SGD) in fp32, channels_last, bf16 autocast and bf16 +
    channels_last, variants alternated; ratios against fp32, achieved training GFLOP/s against a large fp32 and
    bf16 matmul timed in the same run; --profile adds torch.profiler's top ops for one bf16 + channels_last step;
    --device cuda runs it on a GPU with fp16 AMP (GradScaler, as the trainer) among the variants;
(e) the search's proxy (8 epochs) evaluated every epoch against only at the rung epochs and the last one, runs
    alternated; then the cost of one epoch's evaluation with an fp32 forward against a bf16 one;
(a) trainer throughput against a bare PyTorch loop on the same model and batches;
(b) wall time of the default proxy (`nas search` and `nas evaluate` defaults) split into data, training and
    evaluation.

    python bench/bench_train.py                          # parts p and e (issue 13), yolov5n and yolov5s
    python bench/bench_train.py --part p --threads 1 --profile
    python bench/bench_train.py --part p --device cuda --batch 64   # on a GPU: fp16 AMP among the variants
    python bench/bench_train.py --part ab                # the trainer-overhead parts

The bare loop does only forward, YOLOv5 loss, backward, SGD step on pre-built batches; the trainer adds
sampling, augmentation (flip + HSV), warm-up bookkeeping, gradient clipping and the finite-loss check.
Runs alternate (bare, trainer, bare, ...) so that load from other processes hits both alike; a run's
rate is its median step (wall and process CPU time), and the median over the repeats is reported.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch


def _rate(stamps: list[tuple[int, float, float]], batch: int) -> tuple[float, float]:
    """Images/s (wall, CPU) from (epoch, wall, cpu) stamps taken after every batch: the median step, skipping
    each epoch's first interval (it holds evaluation or setup), so bursts of other work barely count."""
    walls, cpus = [], []
    for (e0, w0, c0), (e1, w1, c1) in zip(stamps, stamps[1:], strict=False):
        if e0 == e1:
            walls.append(w1 - w0)
            cpus.append(c1 - c0)
    return batch / statistics.median(walls), batch / statistics.median(cpus)


def bare_loop(model_name: str, data, epochs: int, batch: int, seed: int = 0) -> tuple[float, float]:
    """Images/s (wall, CPU) of the minimal loop: same model build, loss, SGD settings, no augmentation."""
    from nas.data import batches
    from nas.model import build_model
    from nas.train.hyp import Hyp, build_optimizer
    from nas.train.loss import DetectionLoss

    torch.manual_seed(seed)
    model = build_model(model_name, nc=data.nc).train()
    opt = build_optimizer(model, Hyp(), batch)
    loss_fn = DetectionLoss(model, data.size)
    prepared = [
        (torch.from_numpy(b.images).permute(0, 3, 1, 2).float().div_(255).contiguous(), torch.from_numpy(b.targets))
        for b in batches(data, batch)
    ]
    assert all(x.shape[0] == batch for x, _ in prepared), "use a train set that is a multiple of the batch"
    stamps = []
    for e in range(epochs):
        for x, tg in prepared:
            loss, _ = loss_fn(model(x), tg)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            stamps.append((e, time.perf_counter(), time.process_time()))
    return _rate(stamps, batch)


def trainer_loop(model_name: str, spec, epochs: int, batch: int, imgsz: int) -> tuple[float, float]:
    """Images/s (wall, CPU) of train_and_evaluate's training steps, timed like the bare loop."""
    from nas.train import train_and_evaluate

    stamps = []
    train_and_evaluate(
        model_name, spec, epochs=epochs, imgsz=imgsz, batch=batch, seed=0,
        batch_callback=lambda e, i, nb: stamps.append((e, time.perf_counter(), time.process_time())),
    )  # fmt: skip
    return _rate(stamps, batch)


def part_a(model_name: str, repeats: int, imgsz: int, batch: int, n_train: int, epochs: int) -> None:
    from nas.data import SyntheticConfig, load_data_yaml, load_split, synthetic_dataset

    spec = load_data_yaml(synthetic_dataset(SyntheticConfig(n_train=n_train, n_val=16, size=imgsz)))
    data = load_split(spec, "train", imgsz)
    bare, ours = [], []
    for _ in range(repeats):
        bare.append(bare_loop(model_name, data, epochs, batch))
        ours.append(trainer_loop(model_name, spec, epochs, batch, imgsz))
    bw, bc = (statistics.median(x[i] for x in bare) for i in (0, 1))
    tw, tc = (statistics.median(x[i] for x in ours) for i in (0, 1))
    print(f"(a) {model_name} imgsz {imgsz} batch {batch}, {epochs} x {n_train} images, median of {repeats}")
    print(f"    bare loop : {bw:7.2f} img/s wall  {bc:7.2f} img/s CPU")
    print(f"    trainer   : {tw:7.2f} img/s wall  {tc:7.2f} img/s CPU")
    print(f"    overhead  : {100 * (bw / tw - 1):+6.1f}% wall  {100 * (bc / tc - 1):+6.1f}% CPU (target <= 5%)")
    print(f"    runs      : bare {[round(x[0], 2) for x in bare]}, trainer {[round(x[0], 2) for x in ours]} img/s wall")


def part_b(model_name: str, epochs: int, imgsz: int, batch: int, precision: str = "auto") -> None:
    from nas.data import SyntheticConfig, clear_memory_cache, load_data_yaml, load_split, synthetic_dataset
    from nas.data.resolve import SYNTHETIC_TRAIN, SYNTHETIC_VAL
    from nas.train import train_and_evaluate

    cfg = SyntheticConfig(n_train=SYNTHETIC_TRAIN, n_val=SYNTHETIC_VAL, size=imgsz)  # the search's synthetic set
    t = time.perf_counter()
    y = synthetic_dataset(cfg)
    gen = time.perf_counter() - t
    clear_memory_cache()
    t = time.perf_counter()
    spec = load_data_yaml(y)
    load_split(spec, "train", imgsz)
    load_split(spec, "val", imgsz)
    load = time.perf_counter() - t
    clear_memory_cache()
    c = time.process_time()
    r = train_and_evaluate(model_name, cfg, epochs=epochs, imgsz=imgsz, batch=batch, seed=0, precision=precision)
    cpu = time.process_time() - c
    print(f"(b) {model_name} proxy: {epochs} epochs, imgsz {imgsz}, batch {batch}, {r.precision}, "
          f"{cfg.n_train} train / {cfg.n_val} val synthetic images")  # fmt: skip
    print(f"    synthetic generation (first use only, cached after): {gen:6.1f}s; decode+letterbox: {load:5.2f}s")
    print(f"    wall {r.wall_time:6.1f}s = data {r.times['data']:5.1f}s + train {r.times['train']:6.1f}s "
          f"+ eval {r.times['eval']:5.1f}s (+ build/cost {r.wall_time - sum(r.times.values()):4.1f}s); "
          f"CPU {cpu:6.1f}s")  # fmt: skip
    print(f"    status {r.status}, fitness {r.fitness:.4f}, mAP50 {r.mAP50:.4f}, mAP50-95 {r.mAP50_95:.4f}, "
          f"params {r.params:,}, GFLOPs {r.gflops}")  # fmt: skip
    per_epoch = [(h["epoch"], round(h["mAP50"], 3), round(h["time"], 1)) for h in r.history]
    print(f"    per epoch (epoch, mAP50, s): {per_epoch}")


# ------------------------------------------------------------------ (p) precision of one training step

CPU = torch.device("cpu")
VARIANTS = ("fp32", "channels_last", "bf16", "bf16+channels_last")
#: on a GPU: fp16 AMP + channels_last is what --precision fp16 trains with (auto is fp32 there)
CUDA_VARIANTS = ("fp32", "channels_last", "fp16", "fp16+channels_last", "bf16+channels_last")


def _variant(name: str):
    from nas.train import Precision

    low = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(name.split("+")[0])
    return Precision(name.split("+")[0] if low else "fp32", low, name.endswith("channels_last"))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class MatmulPeak:
    """GFLOP/s of n x n x n matmuls (n = 256 ... 2048) in fp32 and bf16, the fastest seen: a peak is what the
    cores can do, and sampling it between the training steps (`sample`) lets it meet the same load from
    other processes as the steps do."""

    SIZES = (256, 512, 1024, 2048)
    CUDA_SIZES = (2048, 4096, 8192)

    def __init__(self, device: torch.device = CPU) -> None:
        self.device = device
        low = "fp16" if device.type == "cuda" else "bf16"  # the low-precision autocast dtype offered there
        dtypes = (("fp32", torch.float32), (low, torch.float16 if low == "fp16" else torch.bfloat16))
        sizes = self.CUDA_SIZES if device.type == "cuda" else self.SIZES
        self.operands = [(label, torch.randn(2, n, n, dtype=dtype, device=device)) for n in sizes
                         for label, dtype in dtypes]
        self.best = {label: 0.0 for label, _ in dtypes}
        self.sample(), self.sample()  # warm-up

    def sample(self) -> None:
        for label, ab in self.operands:
            _sync(self.device)
            t = time.perf_counter()
            ab[0] @ ab[1]
            _sync(self.device)
            self.best[label] = max(self.best[label], 2 * ab.shape[1] ** 3 / (time.perf_counter() - t) / 1e9)


class Step:
    """One variant's training step on a fixed batch: its own model copy, SGD and loss, as the trainer runs them."""

    def __init__(self, state: dict, model_name: str, nc: int, imgsz: int, batch: int, variant: str, bt,
                 device: torch.device = CPU) -> None:
        from nas.model import build_model
        from nas.train.hyp import Hyp, build_optimizer
        from nas.train.loss import DetectionLoss
        from nas.train.val import to_input

        self.prec, self.device = _variant(variant), device
        self.model = build_model(model_name, nc=nc)
        self.model.load_state_dict(state)
        self.model.to(device, memory_format=self.prec.memory_format).train()
        self.opt = build_optimizer(self.model, Hyp(), batch)
        self.loss = DetectionLoss(self.model, imgsz)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.prec.grad_scaler)  # as the trainer does
        self.images, self.targets = bt.images, torch.from_numpy(bt.targets).to(device)
        self.to_input = to_input

    def __call__(self) -> float:
        _sync(self.device)
        t = time.perf_counter()
        x = self.to_input(self.images, self.device, None, self.prec.memory_format)
        with self.prec.autocast(x.device):
            preds = self.model(x)
        loss, _ = self.loss(preds, self.targets)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        self.opt.zero_grad(set_to_none=True)
        _sync(self.device)
        return time.perf_counter() - t


def part_p(models: list[str], imgsz: int, batch: int, rounds: int, steps: int, profile: bool,
           device: torch.device = CPU) -> None:
    from nas.cost import count
    from nas.data import SyntheticConfig, batches, load_data_yaml, load_split, synthetic_dataset
    from nas.model import build_model
    from nas.train.precision import cpu_has_native_bf16

    spec = load_data_yaml(synthetic_dataset(SyntheticConfig(n_train=batch, n_val=1, size=imgsz)))
    bt = next(iter(batches(load_split(spec, "train", imgsz), batch)))
    peak = MatmulPeak(device)
    low = next(k for k in peak.best if k != "fp32")
    variants = CUDA_VARIANTS if device.type == "cuda" else VARIANTS
    print(f"(p) one training step on {_device_name(device)} at imgsz {imgsz}, batch {batch}: forward + YOLOv5 loss "
          f"+ backward + SGD; median of {rounds} rounds x {steps} steps, variants alternated")
    sizes = "2048..8192" if device.type == "cuda" else "256..2048"
    native = f"native bf16 (avx512_bf16/amx_bf16): {cpu_has_native_bf16()}; " if device.type == "cpu" else ""
    print(f"    {native}matmul peak: n^3 matmuls, n {sizes}, fp32 and {low}, timed between the rounds, the fastest")
    print("    GFLOP/s = 3 x forward GFLOPs (nas.cost: 2 x MACs of convs and matmuls; forward, grad-input and "
          "grad-weight each) x images/s; BatchNorm, activations, loss and SGD are not counted")
    for name in models:
        torch.manual_seed(0)
        ref = build_model(name, nc=spec.nc)
        gflops = count(ref, imgsz=(imgsz, imgsz)).gflops
        steps_by = {v: Step(ref.state_dict(), name, spec.nc, imgsz, batch, v, bt, device) for v in variants}
        for step in steps_by.values():  # warm-up: oneDNN primitive creation / cuDNN plans, weight reorders
            step(), step()
        times: dict[str, list[float]] = {v: [] for v in variants}
        for _ in range(rounds):
            for v, step in steps_by.items():
                times[v] += [step() for _ in range(steps)]
            peak.sample()
        med = {v: statistics.median(t) for v, t in times.items()}
        best = peak.best
        print(f"    {name}: {gflops:.2f} forward GFLOPs per image at {imgsz}; matmul peak so far fp32 "
              f"{best['fp32']:.0f} GFLOP/s, {low} {best[low]:.0f} GFLOP/s")
        print(f"      {'variant':<20} {'ms/step':>8} {'speed-up':>8} {'img/s':>7} {'GFLOP/s':>8} "
              f"{'% fp32 peak':>11} {f'% {low} peak':>11}")
        for v in variants:
            rate = 3 * gflops * batch / med[v]
            print(f"      {v:<20} {1000 * med[v]:8.1f} {med['fp32'] / med[v]:7.2f}x {batch / med[v]:7.1f} "
                  f"{rate:8.1f} {100 * rate / best['fp32']:10.1f}% {100 * rate / best[low]:10.1f}%")
        if profile:
            _profile(steps_by[variants[-1] if device.type == "cpu" else "fp16+channels_last"], name, device)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} ({device})"
    return f"CPU, {torch.get_num_threads()} threads"


def _profile(step: Step, name: str, device: torch.device = CPU, rows: int = 15) -> None:
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        step()
    key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    print(f"    top ops by {key.replace('_', ' ')}, one {step.prec.name} + channels_last step of {name}:")
    table = prof.key_averages().table(sort_by=key, row_limit=rows, max_name_column_width=40)
    print("\n".join("      " + line for line in table.splitlines()))


# ------------------------------------------------------------------ (e) evaluation schedule and precision


def rung_epochs(epochs: int, eta: int = 3) -> list[int]:
    """Geometric rungs at epochs/eta^k (rounded up), below the last epoch: 8 epochs -> [1, 3]."""
    out, r = set(), epochs / eta
    while r >= 1:
        out.add(math.ceil(r))
        r /= eta
    return sorted(e for e in out if e < epochs)


def part_e(models: list[str], epochs: int, imgsz: int, batch: int, precision: str, repeats: int) -> None:
    from nas.data import SyntheticConfig, load_data_yaml, load_split, synthetic_dataset
    from nas.model import build_model
    from nas.train import evaluate, resolve_precision, train_and_evaluate

    spec = load_data_yaml(synthetic_dataset(SyntheticConfig(size=imgsz)))
    val = load_split(spec, "val", imgsz)
    prec = resolve_precision(precision, "cpu")
    rungs = rung_epochs(epochs)
    print(f"(e) the search's proxy: {epochs} epochs, imgsz {imgsz}, batch {batch}, precision {prec.name}; eval "
          f"every epoch against only at rungs {rungs} + the last epoch; runs alternated, {repeats} each")
    for name in models:
        runs: dict[str, list] = {"every": [], "rungs": []}
        model = None
        for _ in range(repeats):
            for key, sched in (("every", None), ("rungs", rungs)):
                torch.manual_seed(0)
                m = build_model(name, nc=spec.nc)
                runs[key].append(train_and_evaluate(m, spec, epochs=epochs, imgsz=imgsz, batch=batch,
                                                    precision=prec, eval_epochs=sched))
                model = m
        wall = {k: statistics.median(r.wall_time for r in v) for k, v in runs.items()}
        ev = {k: statistics.median(r.times["eval"] for r in v) for k, v in runs.items()}
        tr = {k: statistics.median(r.times["train"] for r in v) for k, v in runs.items()}
        for k, label in (("every", "eval every epoch"), ("rungs", "eval at rungs + last")):
            print(f"    {name} {label:<21}: wall {wall[k]:6.1f}s = train {tr[k]:6.1f}s + eval {ev[k]:5.1f}s + rest")
        print(f"    {name} rungs / every: {wall['rungs'] / wall['every']:.2f} wall, "
              f"{ev['rungs'] / ev['every']:.2f} eval")
        fits = {k: round(v[0].fitness, 4) for k, v in runs.items()}
        print(f"      fitness every {fits['every']}, rungs {fits['rungs']} (same training, scored at fewer epochs)")
        # one epoch's evaluation of the trained model, forward in fp32 or bf16 (NMS and metrics always fp32)
        evs: dict[str, list[float]] = {v: [] for v in VARIANTS}
        maps: dict[str, tuple[float, float]] = {}
        for _ in range(repeats + 1):
            for v in VARIANTS:
                p = _variant(v)
                model.to(memory_format=p.memory_format)
                t = time.perf_counter()
                maps[v] = evaluate(model, val, batch * 2, precision=p)
                evs[v].append(time.perf_counter() - t)
        med = {v: statistics.median(t[1:]) for v, t in evs.items()}  # the first round warms up
        fwd = _forward_time(model, val, batch * 2)
        print(f"      one epoch's eval ({len(val)} val images): "
              + ", ".join(f"{v} {med[v]:.2f}s (mAP50 {maps[v][0]:.4f})" for v in VARIANTS))
        print(f"      fp32 eval costs {med['fp32'] - med['bf16+channels_last']:+.2f}s per evaluated epoch against a "
              f"bf16 + channels_last forward ({med['fp32'] / med['bf16+channels_last']:.2f}x); of the fp32 eval, "
              f"the forward alone is {fwd:.2f}s, NMS + metrics the rest")


def _forward_time(model, data, batch: int) -> float:
    from nas.data import batches
    from nas.train.val import to_input

    model.to(memory_format=torch.contiguous_format).eval()
    t = time.perf_counter()
    with torch.no_grad():
        for bt in batches(data, batch):
            model(to_input(bt.images, torch.device("cpu")))
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", default="pe", help="any of p, e, a, b (default pe)")
    ap.add_argument("--models", default="yolov5n,yolov5s")
    ap.add_argument("--proxy-models", default="yolov5n", help="models for part e (a full proxy run each)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--device", default="cpu", help="part p: cpu, cuda or cuda:N (GPU variants: fp32, "
                    "channels_last, fp16 AMP with and without channels_last, bf16 + channels_last)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5, help="part p: rounds of alternated variants")
    ap.add_argument("--steps", type=int, default=3, help="part p: steps per variant per round")
    ap.add_argument("--profile", action="store_true", help="part p: torch.profiler top ops of a bf16 step")
    ap.add_argument("--precision", default="auto", help="part e: training precision (auto, fp32, bf16)")
    ap.add_argument("--imgsz", type=int, default=0, help="image size (0: 256 for parts p, e, a; the search's for b)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=0, help="parts b, e epochs (0: the default proxy's, search's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, numpy {np.__version__}")
    models = args.models.split(",")
    if "p" in args.part:
        from nas.device import parse_device

        part_p(models, args.imgsz or 256, args.batch, args.rounds, args.steps, args.profile,
               torch.device(parse_device(args.device)))
    if "e" in args.part:
        from nas.search.options import SearchOptions

        epochs = args.epochs or SearchOptions.__dataclass_fields__["epochs"].default
        part_e(args.proxy_models.split(","), epochs, args.imgsz or 256, args.batch, args.precision,
               max(args.repeats // 2, 1))
    if "a" in args.part:
        part_a(models[0], args.repeats, args.imgsz or 256, args.batch, n_train=8 * args.batch, epochs=2)
    if "b" in args.part:  # the search's default proxy unless --epochs / --imgsz say otherwise
        from nas.search.options import SearchOptions

        fields = SearchOptions.__dataclass_fields__
        for m in models:
            part_b(m, args.epochs or fields["epochs"].default, args.imgsz or fields["imgsz"].default, args.batch,
                   args.precision)


if __name__ == "__main__":
    main()

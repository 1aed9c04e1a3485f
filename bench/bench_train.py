"""Proxy-training speed: (a) trainer throughput against a bare PyTorch loop on the same model and batches,
(b) wall time of the default proxy (`nas evaluate` defaults) split into data, training and evaluation.

    python bench/bench_train.py                    # both parts, yolov5n and yolov5s
    python bench/bench_train.py --part a --threads 1

The bare loop does only forward, YOLOv5 loss, backward, SGD step on pre-built batches; the trainer adds
sampling, augmentation (flip + HSV), warm-up bookkeeping, gradient clipping and the finite-loss check.
Runs alternate (bare, trainer, bare, ...) so that load from other processes hits both alike; a run's
rate is its median step (wall and process CPU time), and the median over the repeats is reported.
"""

from __future__ import annotations

import argparse
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
    from nas.train.loss import DetectionLoss
    from nas.train.trainer import Hyp, build_optimizer

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


def part_b(model_name: str, epochs: int, imgsz: int, batch: int) -> None:
    from nas.data import SyntheticConfig, clear_memory_cache, load_data_yaml, load_split, synthetic_dataset
    from nas.train import train_and_evaluate

    cfg = SyntheticConfig(size=imgsz)
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
    r = train_and_evaluate(model_name, None, epochs=epochs, imgsz=imgsz, batch=batch, seed=0)
    cpu = time.process_time() - c
    print(f"(b) {model_name} default proxy: {epochs} epochs, imgsz {imgsz}, batch {batch}, "
          f"{cfg.n_train} train / {cfg.n_val} val synthetic images")  # fmt: skip
    print(f"    synthetic generation (first use only, cached after): {gen:6.1f}s; decode+letterbox: {load:5.2f}s")
    print(f"    wall {r.wall_time:6.1f}s = data {r.times['data']:5.1f}s + train {r.times['train']:6.1f}s "
          f"+ eval {r.times['eval']:5.1f}s (+ build/cost {r.wall_time - sum(r.times.values()):4.1f}s); "
          f"CPU {cpu:6.1f}s")  # fmt: skip
    print(f"    status {r.status}, fitness {r.fitness:.4f}, mAP50 {r.mAP50:.4f}, mAP50-95 {r.mAP50_95:.4f}, "
          f"params {r.params:,}, GFLOPs {r.gflops}")  # fmt: skip
    per_epoch = [(h["epoch"], round(h["mAP50"], 3), round(h["time"], 1)) for h in r.history]
    print(f"    per epoch (epoch, mAP50, s): {per_epoch}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["a", "b", "ab"], default="ab")
    ap.add_argument("--models", default="yolov5n,yolov5s")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--imgsz", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=0, help="part b epochs (0: the default proxy's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, numpy {np.__version__}")
    models = args.models.split(",")
    if "a" in args.part:
        part_a(models[0], args.repeats, args.imgsz, args.batch, n_train=8 * args.batch, epochs=2)
    if "b" in args.part:
        import inspect

        from nas.train import train_and_evaluate

        epochs = args.epochs or inspect.signature(train_and_evaluate).parameters["epochs"].default
        for m in models:
            part_b(m, epochs, args.imgsz, args.batch)


if __name__ == "__main__":
    main()

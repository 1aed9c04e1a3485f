"""`nas evaluate MODEL`: score one model with the short, seeded proxy training run the search uses."""

from __future__ import annotations

import json
import logging
import sys

import click

from nas.commands._options import DEVICE_HELP, WEIGHTS_HELP


@click.command("evaluate")
@click.argument("model")
@click.option(
    "--data",
    default=None,
    metavar="YAML",
    help="Ultralytics data YAML (path/train/val/names). Default: the built-in synthetic dataset.",
)
@click.option("--epochs", default=None, type=click.IntRange(min=1),
              help="Training epochs [default: the search's proxy, 4; with --weights the fine-tuning proxy's].")
@click.option(
    "--imgsz",
    default=None,
    type=click.IntRange(min=32),
    metavar="PIXELS",
    help="Image size in pixels, square, for training and evaluation (a multiple of the model's stride) "
         "[default: 128; with --weights the fine-tuning proxy's].",
)
@click.option("--batch", default=8, show_default=True, type=click.IntRange(min=1), help="Batch size.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for weights, sampling and augmentation.")
@click.option("--device", default="cpu", show_default=True, metavar="DEVICE", help=DEVICE_HELP)
@click.option("--precision", default="auto", show_default=True, type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
              help="Training precision: auto = bf16 + channels_last on CPUs with native bf16, fp32 elsewhere "
                   "(the search's default precision).")
@click.option(
    "--cache",
    "cache_dir",
    default=None,
    metavar="DIR",
    help="Where the synthetic dataset is written (default $NAS_CACHE or ~/.cache/nas).",
)
@click.option("--weights", default=None, metavar="CHECKPOINT.pt", help=WEIGHTS_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout (progress stays on stderr).")
def command(
    model: str,
    data: str | None,
    epochs: int | None,
    imgsz: int | None,
    batch: int,
    seed: int,
    device: str,
    precision: str,
    cache_dir: str | None,
    weights: str | None,
    as_json: bool,
) -> None:
    """Train MODEL briefly and report mAP50, mAP50-95 and fitness (0.1 mAP50 + 0.9 mAP50-95).

    MODEL is a built-in name (yolov5n, yolov5s, ...), a model YAML, or a YAML written by export-best.
    Without --data it trains on the built-in synthetic dataset (shapes x colours on clutter; 512 train and 64
    val images, as `nas search` uses), generated once and cached. The defaults are the search's proxy, so a
    trial's score is reproduced by evaluating its model with the study's settings; the same model, data and
    seed give the same fitness on the same machine.

    \b
    Example:
      nas evaluate best.yaml --data coco8.yaml --epochs 10 --imgsz 256
      nas evaluate edited.yaml --weights yolov5n.pt   # fine-tune: the checkpoint aligned layer by layer
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from nas.console import console as make_console
    from nas.device import parse_device
    from nas.search.options import SearchOptions
    from nas.train import train_and_evaluate
    from nas.weights.base import finetune_hyp, proxy_settings

    epochs, imgsz = proxy_settings(weights, epochs, imgsz, SearchOptions.epochs, SearchOptions.imgsz)
    device = parse_device(device)
    init = _initializer(model, weights)  # the checkpoint is read and aligned with MODEL before any training
    err = Console(stderr=True)
    out = make_console() if not as_json else err

    class _Warn(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            err.print(f"[yellow]warning:[/] {record.getMessage()}", highlight=False, soft_wrap=True)

    log = logging.getLogger("nas")
    handler = _Warn(logging.WARNING)
    log.addHandler(handler)
    old_propagate = log.propagate
    log.propagate = False

    cols = (("epoch", 7), ("box", 8), ("obj", 8), ("cls", 8), ("mAP50", 8), ("mAP50-95", 9), ("fitness", 8))
    header = " ".join(f"{name:>{w}}" for name, w in cols) + f" {'time':>7}"
    progress = Progress(
        TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,  # on a pipe the bar would only leave a blank line before any error
    )
    task = progress.add_task("train", total=None, epoch=0, epochs=epochs)
    printed_header = False

    def on_batch(epoch: int, i: int, nb: int) -> None:
        nonlocal printed_header
        if not printed_header:  # printed once training starts, so bad input stays a single error line
            err.print(
                f"evaluating [bold]{model}[/] on {data or 'the synthetic dataset'}: "
                f"{epochs} epochs, imgsz {imgsz}, batch {batch}, seed {seed}, {device}",
                highlight=False,
                soft_wrap=True,
            )
            err.print(header, style="bold", highlight=False)
            printed_header = True
        progress.update(task, completed=i, total=nb, epoch=epoch)

    def on_epoch(rec: dict) -> None:
        progress.console.print(
            f"{rec['epoch']:>4}/{epochs:<2} {rec['box']:8.4f} {rec['obj']:8.4f} {rec['cls']:8.4f} "
            f"{rec['mAP50']:8.4f} {rec['mAP50-95']:9.4f} {rec['fitness']:8.4f} {rec['time']:6.1f}s",
            highlight=False,
            soft_wrap=True,
        )

    try:  # without --data: the search's built-in set at this imgsz (nas.data.resolve)
        with progress:
            result = train_and_evaluate(
                model, data or None, epochs=epochs, imgsz=imgsz, batch=batch, seed=seed, device=device,
                callback=on_epoch, batch_callback=on_batch, cache_dir=cache_dir, precision=precision,
                init=None if init is None else _printing(init, err), hyp=finetune_hyp(weights),
            )  # fmt: skip
    finally:
        log.removeHandler(handler)
        log.propagate = old_propagate

    if as_json:
        doc = {
            "model": model,
            "data": data or "synthetic",
            "epochs": epochs,
            "imgsz": imgsz,
            "batch": batch,
            **result.to_dict(),
        }
        if init is not None:
            doc["weights"] = init.base.to_attr()
            doc["transfer"] = init.report.to_dict() if init.report is not None else None
        click.echo(json.dumps(doc, indent=1))
    else:
        table = Table(title=f"{model}: proxy result", title_justify="left")
        for col in ("status", "fitness", "mAP50", "mAP50-95", "params", "GFLOPs", "wall time"):
            table.add_column(col, justify="right")
        gflops = "-" if result.gflops is None else f"{result.gflops:.3f}"
        table.add_row(result.status, f"{result.fitness:.4f}", f"{result.mAP50:.4f}", f"{result.mAP50_95:.4f}",
                      f"{result.params:,}", gflops, f"{result.wall_time:.1f}s")  # fmt: skip
        out.print(table)
        t = result.times
        out.print(
            f"best epoch {result.best_epoch}/{result.epochs}; time: data {t.get('data', 0):.1f}s, "
            f"train {t.get('train', 0):.1f}s, eval {t.get('eval', 0):.1f}s",
            highlight=False,
            soft_wrap=True,
        )
    if result.status == "failed":
        err.print(f"[red]failed:[/] {result.reason}", highlight=False, soft_wrap=True)
        sys.exit(1)


def _initializer(model: str, weights: str | None):
    """With --weights: the checkpoint, read safely, and the hook that aligns it with MODEL and transfers it."""
    if weights is None:
        return None
    from nas.model import load_cfg
    from nas.weights import alignment
    from nas.weights.base import Initializer, load_base

    base = load_base(weights)
    alignment(base.cfg, load_cfg(model))  # a model the checkpoint cannot be aligned with fails before training
    return Initializer(base)


def _printing(init, err):
    """The init hook that also prints the transfer line (before the first epoch's header)."""

    def hook(model):
        report = init(model)
        err.print(report.line(init.base.name), highlight=False, soft_wrap=True)
        return report

    return hook

"""`nas search`: budgeted multi-objective search over an SQL-backed (or journal) Optuna study."""

from __future__ import annotations

import sys

import click

from nas.commands._options import DEVICE_HELP, SAMPLER_HELP, STORAGE_HELP, WEIGHTS_HELP


@click.command("search")
@click.option("--space", "space", required=True, metavar="SPACE",
              help="Search-space YAML (e.g. search_spaces/neck.yaml) or a shipped name: neck, backbone, sppf, full.")
@click.option("--budget", "budget", multiple=True, required=True, metavar="BUDGET",
              help="Compute budget: 10gflops, '10 GFLOPs', 800MFLOPs, 1.2e10flops, or a latency: 80ms, 0.08s, "
                   "800us (predicted by the latency table); repeat to combine, e.g. --budget 5M-params.")
@click.option("--objective", default="gflops", show_default=True, metavar="gflops|latency",
              help="The front's cost axis: GFLOPs, or the latency the study's latency table predicts.")
@click.option("--latency-on", "latency_on", default=None, metavar="torch|onnxruntime",
              help="Where latency is measured: torch (eager, on --device) or onnxruntime (CPU) [default: torch, "
                   "and only when a latency budget or --objective latency needs it; give it to record latency in "
                   "a GFLOPs study too (the table costs minutes at start-up)].")
@click.option("--latency-threads", "latency_threads", default=1, show_default=True, type=int,
              help="Threads the latency is measured with (batch 1 at the space's imgsz).")
@click.option("--trials", default=30, show_default=True, type=int,
              help="Stop when the study holds this many trained candidates (rejected and reused ones are free).")
@click.option("--timeout", default=None, metavar="DURATION", help="Stop after this long: 90s, 30m, 2h, 1h30m.")
@click.option("--study", "study_name", default=None, help="Study name [default: the space file's stem].")
@click.option("--storage", default=None, metavar="URL", help=STORAGE_HELP)
@click.option("--sampler", default="tpe", show_default=True, type=click.Choice(["tpe", "nsga2", "gp", "random"]),
              help=SAMPLER_HELP)
@click.option("--seed", default=0, show_default=True, type=int, help="Sampler and training seed.")
@click.option("--data", default=None, metavar="DATA_YAML",
              help="YOLO-format data YAML to score on [default: the built-in synthetic dataset].")
@click.option("--epochs", default=None, type=click.IntRange(min=1),
              help="Proxy training epochs [default: 4; with --weights the fine-tuning proxy's, docs/FIDELITY.md].")
@click.option("--imgsz", default=None, type=int, metavar="PIXELS",
              help="Image size in pixels, square, of the proxy training runs (a multiple of 32) "
                   "[default: 128; with --weights the fine-tuning proxy's].")
@click.option("--batch", default=8, show_default=True, type=click.IntRange(min=1), help="Proxy batch size.")
@click.option("--device", default="cpu", show_default=True, metavar="DEVICE", help=DEVICE_HELP)
@click.option("--workers", default="auto", show_default=True, metavar="N|auto", envvar="NAS_WORKERS",
              help="Worker processes on this machine sharing the study; auto = one per CPU core (with a "
                   "journal or server storage; 1 with SQLite or a GPU). Each gets cores/N torch threads. "
                   "Env: NAS_WORKERS.")
@click.option("--early-stop/--no-early-stop", default=True, show_default=True,
              help="Successive halving: at each rung epoch only the top 1/eta of the candidates that reached it "
                   "(Pareto rank of fitness and GFLOPs) train on; the rest are recorded as stopped.")
@click.option("--eta", default=3, show_default=True, type=click.IntRange(min=2),
              help="Reduction factor of the rungs: rungs at epochs/eta^k, the top 1/eta go on.")
@click.option("--precision", default="auto", show_default=True, type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
              help="Proxy training precision: auto = bf16 + channels_last on CPUs with native bf16, fp32 elsewhere "
                   "(GPUs too: fp16 did not rank like fp32 there). bf16 ranks candidates like fp32 "
                   "(docs/FIDELITY.md).")
@click.option("--weights", default=None, metavar="CHECKPOINT.pt", help=WEIGHTS_HELP)
def command(space, budget, trials, timeout, study_name, storage, sampler, seed, data, epochs, imgsz, batch, device,
            workers, early_stop, eta, precision, weights, objective, latency_on, latency_threads) -> None:
    """Search where attention blocks go in a YOLOv5 model, under a compute budget.

    Candidates over the budget are rejected before training (counted on the meta device) and recorded as
    infeasible, so the sampler learns the boundary. The rest are trained briefly and scored by fitness
    (0.1 mAP50 + 0.9 mAP50-95). Running the same command again resumes the study.

    \b
    Example:
      nas search --space neck --budget 10gflops --trials 20
    """
    from nas.budget import parse_budget
    from nas.cost.gate import CostMismatch
    from nas.latency.study import LatencySettings
    from nas.search.options import SearchOptions, parse_duration
    from nas.search.run import prepare
    from nas.search.workers import parse_workers
    from nas.weights.base import proxy_settings

    epochs, imgsz = proxy_settings(weights, epochs, imgsz, SearchOptions.epochs, SearchOptions.imgsz)

    opts = SearchOptions(space=space, budget=parse_budget(list(budget)), trials=trials,
                         timeout=parse_duration(timeout), study=study_name, storage=storage, sampler=sampler,
                         seed=seed, data=data, epochs=epochs, imgsz=imgsz, batch=batch, device=device,
                         workers=parse_workers(workers, storage, device), early_stop=early_stop,
                         eta=eta, precision=precision, weights=weights,
                         latency=LatencySettings(objective, latency_on, latency_threads))
    space_obj = prepare(opts)
    try:
        _run_main(opts, space_obj)
    except CostMismatch as e:  # a bug in nas, not a user error: exit 3, the trial is failed with this reason
        click.echo(f"internal error: {e}", err=True)
        sys.exit(3)


def _run_main(opts, space) -> None:
    from nas.console import console as make_console
    from nas.export import header
    from nas.latency.progress import measure_latency_table
    from nas.search.data import resolve_search_data
    from nas.search.live import Display
    from nas.search.run import open_study, run_search
    from nas.search.workers import spawn_workers, workers_stop_with_us
    from nas.storage import mask_url, refuse_sqlite_with_workers

    console = make_console(stderr=True)
    refuse_sqlite_with_workers(opts.storage, opts.workers)
    with console.status("preparing the data set..."):
        data_spec = resolve_search_data(opts, space)
    study = open_study(space, opts)  # validates the storage; refuses a different space or proxy
    table = measure_latency_table(console, opts, space, study, data_spec)  # before the workers: they reuse it
    children = spawn_workers(opts, study.study_name)
    if children:
        console.print(f"started {len(children)} more worker process(es); "
                      f"logs in studies/{study.study_name}-worker*.log")
    display = Display(console, opts, study, mask_url(opts.storage))
    if opts.base is not None:
        from nas.weights.base import header_line, proxy_line

        display.weights_line = (header_line(opts.base, space.nc or data_spec.nc) + "\n"
                                + proxy_line(opts.epochs, opts.imgsz, opts.data))
    try:
        with workers_stop_with_us(children), display.live():
            summary = run_search(opts, display.progress(), space=space, study=study, data_spec=data_spec,
                                 table=table, header=header)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: the running trial is marked failed and will be re-run first; "
                      "run the same command to resume")
        sys.exit(130)
    _report(summary, opts, study)


def _report(summary, opts, study) -> None:
    from nas.console import console as make_console
    from nas.front.report import front_report
    from nas.front.table import front_table

    console = make_console()
    console.print(f"[bold]{summary.study}[/]: {summary.trained} trained ({summary.stopped_early} stopped early), "
                  f"{summary.rejected} rejected over budget, {summary.reused} reused, {summary.failed} failed"
                  + (f"; {summary.stopped_reason}" if summary.stopped_reason else ""))
    if not summary.front:
        console.print("no feasible trial yet: loosen --budget or see `nas pareto` for the closest candidates")
        return
    console.print(front_table(front_report(study)))  # the same table as `nas pareto`
    study_flag = f" --study {summary.study}" if opts.study else ""
    storage_flag = f" --storage {opts.storage}" if opts.storage else ""
    console.print(f"next: nas pareto{study_flag}{storage_flag} | nas export-best{study_flag}{storage_flag} "
                  f"--out best.yaml")

"""`nas export-best`: write the chosen trial's model YAML, checked to rebuild exactly what was scored."""

from __future__ import annotations

import json

import click

from nas.commands._options import (
    ONNX_EXPORTER_HELP,
    ONNX_HELP,
    ONNX_OPSET_HELP,
    STORAGE_HELP,
    STUDY_HELP,
)


@click.command("export-best")
@click.option(
    "--study", "study_name", default=None, help=STUDY_HELP
)
@click.option("--storage", default=None, metavar="URL", help=STORAGE_HELP)
@click.option("--trial", type=int, default=None, help="Export this trial number (not with --max-gflops or --pick).")
@click.option(
    "--max-gflops",
    type=float,
    default=None,
    metavar="G",
    help="Export the best-fitness feasible trial with at most G GFLOPs (not with --trial or --pick).",
)
@click.option(
    "--pick",
    type=click.Choice(["fitness", "knee"]),
    default=None,
    help="Front point to export: highest fitness (default) or the knee of the front (not with --trial or "
    "--max-gflops).",
)
@click.option("--out", required=True, metavar="FILE.yaml", help="Output model YAML, e.g. best.yaml.")
@click.option("--onnx", "onnx", default=None, metavar="FILE.onnx", help=ONNX_HELP + " At the study's imgsz.")
@click.option("--onnx-opset", type=click.IntRange(min=7), default=None, metavar="N", help=ONNX_OPSET_HELP)
@click.option("--onnx-exporter", type=click.Choice(["torchscript", "dynamo"]), default="torchscript",
              show_default=True, help=ONNX_EXPORTER_HELP)
@click.option("--weights", default=None, metavar="BASE.pt",
              help="Also write best.pt beside the YAML (--out with the suffix .pt): this checkpoint transferred into "
              "the exported architecture, in YOLOv5 v7.0's format; it must be the file the study fine-tuned from.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (the export and the ONNX check) "
              "instead of lines.")
def command(
    study_name: str | None,
    storage: str | None,
    trial: int | None,
    max_gflops: float | None,
    pick: str | None,
    out: str,
    onnx: str | None,
    onnx_opset: int | None,
    onnx_exporter: str,
    weights: str | None,
    as_json: bool,
) -> None:
    """Write a complete YOLOv5 model YAML for one trial, headed by its scores and how to train it.

    Choose the trial with one of --trial, --max-gflops and --pick: they exclude each other. The trial's
    stored YAML is rebuilt on the meta device and recounted first: its params must equal the trial's
    exactly and its GFLOPs to 1e-6, or nothing is written. The header also states every choice, the proxy
    settings behind the scores and, once `nas audit` has run, whether the pick ties with other trials.

    With --weights, best.pt holds the checkpoint's layers at their new indices and the blocks at a seeded init
    (the study keeps no trained weights); stock YOLOv5 `train.py --cfg best.yaml --weights best.pt` loads it
    whole, and the header's train line says so.

    With --onnx the same model is also written as ONNX, run in onnxruntime and compared with torch; a
    mismatch or a block that does not export writes neither file.

    \b
    Example:
      nas export-best --pick knee --out best.yaml
      nas export-best --out best.yaml --onnx best.onnx
      nas export-best --out best.yaml --weights yolov5n.pt
    """
    from nas.export import export_best
    from nas.storage import existing_store, load_nas_study

    study = load_nas_study(storage, study_name)
    store = existing_store(storage)  # the model YAML artifacts (studies made before them keep a user attr)
    options = dict(trial=trial, max_gflops=max_gflops, pick=pick, store=store, onnx=onnx, onnx_opset=onnx_opset,
                   onnx_exporter=onnx_exporter)
    if weights is None:
        result, checkpoint = export_best(study, out, **options), None
    else:
        from nas.weights.export import export_best_weights

        result, checkpoint = export_best_weights(study, out, weights, **options)
    if as_json:
        doc = result.to_dict(study.study_name)
        if checkpoint is not None:
            doc["checkpoint"] = checkpoint.to_dict()
        click.echo(json.dumps(doc))
        return
    h, w = result.imgsz
    fitness = "-" if result.fitness is None else f"{result.fitness:.4f}"
    click.echo(
        f"wrote {result.path}: study {study.study_name}, trial {result.trial}, fitness {fitness}, "
        f"{result.gflops:.3f} GFLOPs at {h}x{w}, {result.params:,} params (rebuilt and recounted: identical)"
        + ("" if result.latency_ms is None else f"; latency {result.latency_ms:.1f} ms predicted"
           + ("" if result.measured_latency_ms is None else f", {result.measured_latency_ms:.1f} ms measured")),
        err=True,
    )
    for note in result.notes:
        click.echo(note, err=True)
    if result.onnx is not None:
        from nas.onnx_export import result_line

        click.echo(result_line(result.onnx, result.imgsz), err=True)
    if checkpoint is not None:
        for line in checkpoint.lines():
            click.echo(line, err=True)

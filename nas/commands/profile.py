"""`nas profile`: per-layer parameters and GFLOPs of a YOLOv5 model YAML."""

from __future__ import annotations

import json

import click

from nas.commands._options import ONNX_EXPORTER_HELP, ONNX_HELP, ONNX_OPSET_HELP, latency_options


@click.command("profile")
@click.argument("model", metavar="MODEL")
@click.option(
    "--imgsz",
    default="640",
    show_default=True,
    metavar="PIXELS",
    help="Input size in pixels: 640 for square, or HxW such as 640x384 (height x width), multiples of 32.",
)
@click.option("--nc", type=int, default=None, help="Override the number of classes in the YAML.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of tables.")
@click.option("--onnx", "onnx", default=None, metavar="FILE.onnx", help=ONNX_HELP + " At --imgsz.")
@click.option("--onnx-opset", type=click.IntRange(min=7), default=None, metavar="N", help=ONNX_OPSET_HELP)
@click.option("--onnx-exporter", type=click.Choice(["torchscript", "dynamo"]), default="torchscript",
              show_default=True, help=ONNX_EXPORTER_HELP)
@latency_options("Also measure the latency: the whole model at batch 1 (the search's method: min of 5 runs after "
                 "2 warm-ups, flagged NOISY on a busy machine) and, in torch, each layer's milliseconds.")
def command(model: str, imgsz: str, nc: int | None, as_json: bool, onnx: str | None, onnx_opset: int | None,
            onnx_exporter: str, latency: bool, latency_on: str, latency_threads: int, device: str) -> None:
    """Parameters, GFLOPs and (with --latency) milliseconds of MODEL, layer by layer.

    MODEL is a built-in name (yolov5n, yolov5s, yolov5m, yolov5l, yolov5x) or a YOLOv5 model YAML path,
    attention blocks included. GFLOPs are 2 x multiply-accumulates at the real input size, counted on the
    meta device (no weights are allocated); YOLOv5's own (thop) figure is shown beside it.

    With --onnx the model is also built for real on the CPU (weights seeded), written as ONNX, run in
    onnxruntime and compared with torch; a mismatch or a block that does not export is an error and writes
    nothing.

    With --latency the model is built for real (weights seeded) and timed at batch 1: the whole model as the
    search's latency table times it, and in torch every layer inside one forward pass (YOLOv5's profile
    column); the layers add up to about the whole.

    \b
    Example:
      nas profile yolov5s --imgsz 640
      nas profile best.yaml --imgsz 640x384 --json
      nas profile best.yaml --onnx best.onnx
      nas profile best.yaml --latency --latency-on onnxruntime
    """
    from rich.table import Table

    from nas.console import console as make_console
    from nas.cost import count, thop_gflops
    from nas.model import build_model

    if latency:  # before any work: the runtime, thread count and device are valid
        from nas.device import parse_device
        from nas.latency.measure import check_runtime

        check_runtime(latency_on, latency_threads)
        device = parse_device(device)
    onnx_path = None
    if onnx is not None:  # before any work: the path can be written and the packages are there
        from nas.onnx_export import check_target

        onnx_path = check_target(onnx, onnx_exporter)
    meta = build_model(model, nc=nc, device="meta")
    cost = count(meta, imgsz, per_layer=True)
    built = None
    if onnx_path is not None or latency:  # one image through the real model must fit; one seeded build serves both
        from nas.onnx_export import build_seeded
        from nas.train.memory import check_export_memory

        check_export_memory(meta.yaml, meta.nc, cost.imgsz, what=model, option="--onnx" if onnx_path else "--latency")
        built = build_seeded(model, nc=nc)
    thop_figure = thop_gflops(meta, cost.imgsz)
    detect = meta.model[-1]
    report = None
    if onnx_path is not None:
        from nas.onnx_export import default_opset, export_onnx, result_line

        opset = default_opset(onnx_exporter) if onnx_opset is None else onnx_opset
        report = export_onnx(built, cost.imgsz, onnx_path, opset=opset, dynamo=onnx_exporter == "dynamo")
    whole, per_layer = None, None
    if latency:
        whole, per_layer = _latency(built, cost.imgsz, latency_on, latency_threads, device)
    if as_json:
        doc = {
            "model": model,
            "params": cost.params,
            "gflops": round(cost.gflops, 6),
            "gflops_thop": None if thop_figure is None else round(thop_figure, 6),
            "layers": len(cost.layers),
            "modules": len(list(meta.modules())),
            "imgsz": list(cost.imgsz),
            "nc": meta.nc,
            "stride": [int(s) for s in meta.stride.tolist()],
            "save": meta.save,
            "per_layer": [
                {
                    "i": layer.i,
                    "from": layer.f,
                    "n": layer.n,
                    "module": layer.module,
                    "args": _jsonable(layer.args),
                    "params": layer.params,
                    "gflops": round(layer.flops / 1e9, 6),
                    "ms": None if per_layer is None else round(per_layer[k], 4),
                    "out_shape": list(layer.out_shape),
                }
                for k, layer in enumerate(cost.layers)
            ],
            "latency": None if whole is None else whole.to_dict(),
        }
        if report is not None:
            doc["onnx"] = report.to_dict()
        click.echo(json.dumps(doc))
        return

    console = make_console()
    h, w = cost.imgsz
    table = Table(title=f"{model} at {h}x{w}, nc={meta.nc}", title_justify="left")
    for col, justify in (
        ("#", "right"),
        ("from", "right"),
        ("n", "right"),
        ("params", "right"),
        ("module", "left"),
        ("arguments", "left"),
        ("GFLOPs", "right"),
        *([("ms", "right")] if per_layer is not None else []),
        ("output", "left"),
    ):
        table.add_column(col, justify=justify, no_wrap=col != "arguments")
    for k, layer in enumerate(cost.layers):
        args = ", ".join(_short(a) for a in layer.args)
        shape = (
            "x".join(str(v) for v in layer.out_shape[1:])
            if layer.module != "Detect"
            else f"{detect.nl} levels"
        )
        table.add_row(
            str(layer.i),
            str(layer.f),
            str(layer.n),
            f"{layer.params:,}",
            layer.module,
            f"[{args}]",
            f"{layer.flops / 1e9:.3f}",
            *([f"{per_layer[k]:.2f}"] if per_layer is not None else []),
            shape,
        )
    table.add_section()
    table.add_row("", "", "", f"{cost.params:,}", "total", "", f"{cost.gflops:.2f}",
                  *([f"{sum(per_layer):.1f}"] if per_layer is not None else []), "")
    console.print(table)
    console.print(
        f"[bold]{len(cost.layers)} layers, {cost.params:,} parameters, {cost.gflops:.2f} GFLOPs[/] "
        f"at {h}x{w} (2 x MACs of every convolution and matrix product)"
    )
    if thop_figure is not None:
        console.print(
            f"YOLOv5/thop figure: {thop_figure:.1f} GFLOPs (unfused, BatchNorm counted, matmuls not, "
            f"extrapolated from {int(max(meta.stride.max().item(), 32))}x"
            f"{int(max(meta.stride.max().item(), 32))})"
        )
    if whole is not None:
        layers = ("" if per_layer is None
                  else f"; the layers of the fastest timed pass add up to {sum(per_layer):.1f} ms")
        console.print(f"latency at batch 1, {h}x{w}: {whole.describe()}{layers}")
    if report is not None:
        click.echo(result_line(report, cost.imgsz))


def _latency(built, imgsz: tuple[int, int], runtime: str, threads: int, device: str):
    """The whole model's Latency and, in torch, each layer's ms, of the one seeded build."""
    from nas.latency.measure import layer_latency, measure

    where = "cpu" if runtime == "onnxruntime" else device
    whole = measure(built, imgsz, runtime=runtime, threads=threads, device=where)
    per_layer = layer_latency(built, imgsz, threads=threads, device=where) if runtime == "torch" else None
    return whole, per_layer


def _short(a: object) -> str:
    """Detect's anchors and channel lists are long: summarise nested lists."""
    if isinstance(a, list) and a and all(isinstance(v, list) for v in a):
        return f"{len(a)}x{len(a[0]) // 2} anchors"
    return str(a)


def _jsonable(args: list) -> list:
    return [a if isinstance(a, (int, float, str, bool, type(None), list, dict)) else str(a) for a in args]

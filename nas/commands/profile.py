"""`nas profile`: per-layer parameters and GFLOPs of a YOLOv5 model YAML."""

from __future__ import annotations

import json

import click

from nas.commands._options import ONNX_EXPORTER_HELP, ONNX_HELP, ONNX_OPSET_HELP


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
def command(model: str, imgsz: str, nc: int | None, as_json: bool, onnx: str | None, onnx_opset: int | None,
            onnx_exporter: str) -> None:
    """Parameters and GFLOPs of MODEL, layer by layer.

    MODEL is a built-in name (yolov5n, yolov5s, yolov5m, yolov5l, yolov5x) or a YOLOv5 model YAML path,
    attention blocks included. GFLOPs are 2 x multiply-accumulates at the real input size, counted on the
    meta device (no weights are allocated); YOLOv5's own (thop) figure is shown beside it.

    With --onnx the model is also built for real on the CPU (weights seeded), written as ONNX, run in
    onnxruntime and compared with torch; a mismatch or a block that does not export is an error and writes
    nothing.

    \b
    Example:
      nas profile yolov5s --imgsz 640
      nas profile best.yaml --imgsz 640x384 --json
      nas profile best.yaml --onnx best.onnx
    """
    from rich.table import Table

    from nas.console import console as make_console
    from nas.cost import count, thop_gflops
    from nas.model import build_model

    onnx_path = None
    if onnx is not None:  # before any work: the path can be written and the packages are there
        from nas.onnx_export import check_target

        onnx_path = check_target(onnx, onnx_exporter)
    meta = build_model(model, nc=nc, device="meta")
    cost = count(meta, imgsz, per_layer=True)
    if onnx_path is not None:
        from nas.train.memory import check_export_memory

        check_export_memory(meta.yaml, meta.nc, cost.imgsz, what=model, option="--onnx")
    thop_figure = thop_gflops(meta, cost.imgsz)
    detect = meta.model[-1]
    report = None
    if onnx_path is not None:
        from nas.onnx_export import build_seeded, default_opset, export_onnx, result_line

        opset = default_opset(onnx_exporter) if onnx_opset is None else onnx_opset
        report = export_onnx(build_seeded(model, nc=nc), cost.imgsz, onnx_path, opset=opset,
                             dynamo=onnx_exporter == "dynamo")
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
                    "out_shape": list(layer.out_shape),
                }
                for layer in cost.layers
            ],
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
        ("output", "left"),
    ):
        table.add_column(col, justify=justify, no_wrap=col != "arguments")
    for layer in cost.layers:
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
            shape,
        )
    table.add_section()
    table.add_row("", "", "", f"{cost.params:,}", "total", "", f"{cost.gflops:.2f}", "")
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
    if report is not None:
        click.echo(result_line(report, cost.imgsz))


def _short(a: object) -> str:
    """Detect's anchors and channel lists are long: summarise nested lists."""
    if isinstance(a, list) and a and all(isinstance(v, list) for v in a):
        return f"{len(a)}x{len(a[0]) // 2} anchors"
    return str(a)


def _jsonable(args: list) -> list:
    return [a if isinstance(a, (int, float, str, bool, type(None), list, dict)) else str(a) for a in args]

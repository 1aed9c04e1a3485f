"""`nas transfer`: a base checkpoint's weights moved into a hand-edited model YAML, layer by role."""

from __future__ import annotations

import json

import click


@click.command("transfer")
@click.option("--weights", required=True, metavar="BASE.pt",
              help="The base checkpoint: YOLOv5 train.py's (v6.x/v7.0) or one nas wrote. Read without running "
              "its code.")
@click.option("--cfg", required=True, metavar="EDITED.yaml",
              help="The edited model YAML: the base's YAML with blocks inserted, layers replaced, ...")
@click.option("--out", required=True, metavar="EDITED.pt", help="Output checkpoint (YOLOv5 v7.0 format).")
@click.option("--nc", type=click.IntRange(min=1), default=None, metavar="N",
              help="Number of classes (default: the edited YAML's nc); Detect's class rows start at init when it "
              "differs from the checkpoint's.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of lines.")
def command(weights: str, cfg: str, out: str, nc: int | None, as_json: bool) -> None:
    """Transfer a checkpoint into an edited YAML: every base layer lands in the layer that now plays its role.

    The two YAMLs' layer lists are aligned (module, arguments, relative sources), every tensor of each matched
    layer is copied to its new index, and the edited model is written as a YOLOv5 v7.0 checkpoint that stock
    `train.py --cfg EDITED.yaml --weights EDITED.pt` loads whole. New blocks and replaced layers keep a seeded
    init. The second line says what YOLOv5's own name-and-shape rule would have transferred from BASE.pt.

    \b
    Example:
      nas transfer --weights yolov5n.pt --cfg yolov5n_sge.yaml --out yolov5n_sge.pt
    """
    from nas.weights.export import transfer_checkpoint

    result = transfer_checkpoint(weights, cfg, out, nc=nc)
    if as_json:
        click.echo(json.dumps(result.to_dict(), sort_keys=True))
        return
    for line in result.lines():
        click.echo(line)

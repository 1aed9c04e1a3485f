"""Let an ultralytics YOLOv5 (v7.0) checkout train nas model YAMLs that contain attention blocks.

YOLOv5's `parse_model` looks module names up in the `models.yolo` namespace and builds unknown modules
with `m(*args)` from the raw YAML args, keeping the input's channel count. A nas YAML row is
`[from, 1, SGE, [channels, *hyperparameters]]` with `channels` before width scaling, so two things are
needed, and `register()` does both:

1. a class named like each block (canonical names and aliases) in `models.yolo`, constructing
   `blocks.build(name, c1, **hyperparameters)`, the very module nas builds and counts;
2. a `parse_model` wrapper that rewrites each block row's args to `[c1, {hyperparameters}]`, c1 being
   the real input width (taken from nas's own parse of the same YAML) and the hyperparameters complete
   and validated (a mapping, so parse_model's `eval` of string args cannot touch them).

Use it from a YOLOv5 checkout:

    python -m nas.yolov5_register train.py --cfg best.yaml --data coco128.yaml --weights '' --img 640

or in your own script: `import models.yolo; from nas.yolov5_register import register; register(models.yolo)`.
"""

from __future__ import annotations

import copy
import runpy
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from nas.errors import NasError


class _BlockFactory:
    """Base of the registered names: calling the class returns the nas block module itself."""

    block_name = ""

    def __new__(cls, c1: int, hp: dict[str, Any] | None = None, *extra: Any) -> Any:
        import blocks

        if extra or not isinstance(c1, int) or (hp is not None and not isinstance(hp, dict)):
            raise NasError(
                f"{cls.block_name}: YOLOv5's parse_model passed {[c1, hp, *extra]!r}; "
                "call nas.yolov5_register.register(models.yolo) before building the model"
            )
        return blocks.build(cls.block_name, c1, **(hp or {}))


def block_classes() -> dict[str, type]:
    """One factory class per block name a YAML may use (canonical names and aliases)."""
    import blocks

    names = [*blocks.REGISTRY, *blocks.ALIASES]
    return {
        name: type(name, (_BlockFactory,), {"block_name": name, "__module__": __name__}) for name in names
    }


def prepare_cfg(d: dict, ch: int = 3) -> dict:
    """A copy of a model dict whose block rows carry `[c1, {hyperparameters}]` for YOLOv5's parse_model."""
    from nas.model import build_model, source_index

    cfg = copy.deepcopy(d)
    model = build_model({k: v for k, v in cfg.items() if k != "ch"}, device="meta", ch=ch)
    infos = model.layers_info
    rows = list(cfg["backbone"]) + list(cfg["head"])
    for i, info in enumerate(infos):
        if info.block is None:
            continue
        f = info.f
        j = source_index(f, i)
        c1 = ch if i == 0 else infos[j].c2
        if info.c2 != c1:
            raise NasError(
                f"layer {i} ({rows[i][2]}) changes the width {c1} -> {info.c2}; "
                "YOLOv5's parse_model keeps the "
                f"input width for modules it does not know, so add {rows[i][2]} to its Conv branch by hand "
                "(c1, c2 = ch[f], make_divisible(args[0] * gw, 8)) or train it with `nas evaluate`"
            )
        rows[i][3] = [c1, dict(info.hyperparameters)]
    return cfg


def register(yolo_module: ModuleType | None = None) -> list[str]:
    """Patch YOLOv5's `models.yolo` so its parse_model builds nas blocks; returns the names registered."""
    if yolo_module is None:
        try:
            import models.yolo as yolo_module  # type: ignore[import-not-found, no-redef]
        except ImportError:
            raise NasError(
                "cannot import models.yolo: run from a YOLOv5 checkout (or put it on PYTHONPATH)"
            ) from None
    classes = block_classes()
    for name, cls in classes.items():
        setattr(yolo_module, name, cls)
    original = yolo_module.parse_model
    if not getattr(original, "_nas_registered", False):

        def parse_model(d: dict, ch: list[int]) -> Any:
            return original(prepare_cfg(d, ch=int(ch[0])), ch)

        parse_model._nas_registered = True  # type: ignore[attr-defined]
        parse_model.__wrapped__ = original  # type: ignore[attr-defined]
        parse_model.__doc__ = original.__doc__
        yolo_module.parse_model = parse_model
    return sorted(classes)


def main(argv: list[str] | None = None) -> None:
    """`python -m nas.yolov5_register SCRIPT.py [args]`: register the blocks, then run a YOLOv5 script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or not argv[0].endswith(".py"):
        print("usage: python -m nas.yolov5_register train.py|val.py|detect.py [its options]", file=sys.stderr)
        raise SystemExit(2)
    script = Path(argv[0]).resolve()
    if not script.is_file():
        print(f"error: {script} not found; run this from a YOLOv5 checkout", file=sys.stderr)
        raise SystemExit(2)
    root = str(script.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        register()
    except NasError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    sys.argv = [str(script), *argv[1:]]
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()

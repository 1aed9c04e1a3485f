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

Use it from a YOLOv5 checkout, for any of its scripts (train.py, val.py, detect.py, export.py, models/yolo.py):

    python -m nas.yolov5_register train.py --cfg best.yaml --data coco128.yaml --weights '' --img 640
    python -m nas.yolov5_register models/yolo.py --cfg best.yaml

The scripts' own `parse_model` is patched as well as `models.yolo`'s: `python models/yolo.py` runs that file as
`__main__`, a namespace of its own, so the script is run in two parts, its definitions, then (blocks
registered in them) its `if __name__ == "__main__":` block. In your own script: `import models.yolo; from
nas.yolov5_register import register; register(models.yolo)`.
"""

from __future__ import annotations

import ast
import builtins
import copy
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import blocks
from nas.errors import NasError
from nas.model import build_model, source_index


class _BlockFactory:
    """Base of the registered names: calling the class returns the nas block module itself."""

    block_name = ""

    def __new__(cls, c1: int, hp: dict[str, Any] | None = None, *extra: Any) -> Any:
        if extra or not isinstance(c1, int) or (hp is not None and not isinstance(hp, dict)):
            raise NasError(
                f"{cls.block_name}: YOLOv5's parse_model passed {[c1, hp, *extra]!r}; "
                "call nas.yolov5_register.register(models.yolo) before building the model"
            )
        return blocks.build(cls.block_name, c1, **(hp or {}))


def block_classes() -> dict[str, type]:
    """One factory class per block name a YAML may use (canonical names and aliases)."""
    names = [*blocks.REGISTRY, *blocks.ALIASES]
    return {
        name: type(name, (_BlockFactory,), {"block_name": name, "__module__": __name__}) for name in names
    }


def prepare_cfg(d: dict, ch: int = 3) -> dict:
    """A copy of a model dict whose block rows carry `[c1, {hyperparameters}]` for YOLOv5's parse_model."""
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


def import_yolo() -> ModuleType:
    """YOLOv5's `models.yolo`; NasError with the real cause when it does not import (only a missing `models`
    package means "not in a YOLOv5 checkout")."""
    try:
        import models.yolo as yolo_module  # type: ignore[import-not-found]
    except ImportError as e:
        if e.name in ("models", "models.yolo"):
            raise NasError("cannot import models.yolo: run from a YOLOv5 checkout (or put it on PYTHONPATH)") from None
        hint = ""
        if e.name == "pkg_resources":
            hint = ("; YOLOv5 v7.0 imports pkg_resources, which setuptools 81 and later no longer ship: "
                    "pip install 'setuptools<81' in YOLOv5's environment")
        elif e.name:
            hint = f"; {e.name} is missing from YOLOv5's environment: pip install -r requirements.txt there"
        raise NasError(f"YOLOv5's models.yolo was found but failed to import: {type(e).__name__}: {e}{hint}") from None
    except Exception as e:  # noqa: BLE001 - whatever YOLOv5's import raises, said in one line
        first = str(e).splitlines()[0] if str(e) else ""
        raise NasError(f"YOLOv5's models.yolo was found but failed to import: {type(e).__name__}: {first}") from None
    return yolo_module


def register(yolo_module: ModuleType | None = None) -> list[str]:
    """Patch YOLOv5's `models.yolo` so its parse_model builds nas blocks; returns the names registered."""
    if yolo_module is None:
        yolo_module = import_yolo()
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


def _checkout(script: Path) -> Path:
    """The YOLOv5 checkout a script belongs to: the nearest folder on its way holding models/yolo.py."""
    for folder in script.parents:
        if (folder / "models" / "yolo.py").is_file():
            return folder
    return script.parent


def _main_block(tree: ast.Module) -> int:
    """Index of the script's top-level `if __name__ == "__main__":` (the body's length when it has none)."""
    for i, node in enumerate(tree.body):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare) and \
                isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__":
            return i
    return len(tree.body)


def run_script(script: Path, argv: list[str]) -> None:
    """Run a YOLOv5 script as `__main__` (as `python SCRIPT` would) with the blocks registered in
    `models.yolo` and, when the script defines `parse_model` itself (models/yolo.py), in its own namespace,
    between its definitions and its `__main__` block."""
    tree = ast.parse(script.read_text(encoding="utf-8"), str(script))
    split = _main_block(tree)
    module = ModuleType("__main__")
    module.__dict__.update(__file__=str(script), __builtins__=builtins, __package__="", __spec__=None,
                           __cached__=None)
    sys.argv = [str(script), *argv]
    sys.modules["__main__"] = module
    code = module.__dict__
    exec(compile(ast.Module(tree.body[:split], []), str(script), "exec"), code)  # noqa: S102 - the user's script
    if callable(code.get("parse_model")):
        register(module)
    exec(compile(ast.Module(tree.body[split:], []), str(script), "exec"), code)  # noqa: S102


def main(argv: list[str] | None = None) -> None:
    """`python -m nas.yolov5_register SCRIPT.py [args]`: register the blocks, then run a YOLOv5 script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or not argv[0].endswith(".py"):
        print("usage: python -m nas.yolov5_register train.py|val.py|detect.py|models/yolo.py [its options]",
              file=sys.stderr)
        raise SystemExit(2)
    script = Path(argv[0]).resolve()
    if not script.is_file():
        print(f"error: {script} not found; run this from a YOLOv5 checkout", file=sys.stderr)
        raise SystemExit(2)
    for folder in (str(_checkout(script)), str(script.parent)):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    try:
        register()
    except NasError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    run_script(script, argv[1:])


if __name__ == "__main__":
    main()

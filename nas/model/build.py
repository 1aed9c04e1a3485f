"""A model YAML (a built-in name, a path or a dict) -> a validated model dict -> a DetectionModel; image sizes.

Every bad input becomes one NasError naming the file, the key and the fix."""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path
from typing import Any

import torch
import yaml

from nas.errors import NasError
from nas.model.parse import REQUIRED_KEYS
from nas.model.yolo import DetectionModel

CFG_DIR = Path(__file__).parent / "cfg"
BUILTIN = tuple(sorted(p.stem for p in CFG_DIR.glob("*.yaml")))


def read_yaml(path: str | Path, what: str = "YAML file") -> Any:
    """Read a YAML file; a missing file or a syntax error becomes a NasError with the line and column."""
    p = Path(path)
    if not p.is_file():
        raise NasError(f"{p}: {what} not found; check the path")
    try:
        with open(p, encoding="utf-8", errors="replace") as fh:
            return yaml.safe_load(fh)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark else str(p)
        raise NasError(f"{where}: YAML syntax error: {e.problem or e.context}; fix the line shown") from None
    except yaml.YAMLError as e:
        raise NasError(f"{p}: not valid YAML ({e})") from None


def model_source(model: str | Path | dict) -> str:
    """A short description of where a model came from, for messages."""
    if isinstance(model, dict):
        return str(model.get("_source", "model YAML"))
    s = str(model)
    return f"built-in {s}" if s in BUILTIN else s


def load_cfg(model: str | Path | dict) -> dict:
    """A built-in name (yolov5n/s/m/l/x), a model YAML path or a dict -> a validated copy of the model dict."""
    if isinstance(model, dict):
        cfg, source = deepcopy(model), model_source(model)
    else:
        name = str(model)
        stem = name[:-5] if name.endswith(".yaml") and not Path(name).exists() else name
        if stem in BUILTIN:
            cfg, source = read_yaml(CFG_DIR / f"{stem}.yaml"), f"built-in {stem}"
        else:
            if not Path(name).exists() and "/" not in name and not name.endswith((".yaml", ".yml")):
                raise NasError(f"{name}: unknown model; use a built-in name ({', '.join(BUILTIN)}) "
                               f"or a model YAML path")
            cfg, source = read_yaml(name, "model YAML"), name
    if not isinstance(cfg, dict):
        raise NasError(f"{source}: not a YOLOv5 model YAML (expected a mapping with keys {', '.join(REQUIRED_KEYS)})")
    missing = [k for k in REQUIRED_KEYS if k not in cfg]
    if missing:
        raise NasError(f"{source}: missing key(s) {', '.join(missing)}; a YOLOv5 model YAML needs "
                       f"{', '.join(REQUIRED_KEYS)}")
    nc = cfg["nc"]
    if not isinstance(nc, int) or isinstance(nc, bool) or nc < 1:
        raise NasError(f"{source}: nc must be a positive integer, got {nc!r}")
    for k in ("depth_multiple", "width_multiple"):
        v = cfg[k]
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0:
            raise NasError(f"{source}: {k} must be a positive number, got {v!r}")
    for k in ("backbone", "head"):
        if not isinstance(cfg[k], list) or not cfg[k]:
            raise NasError(f"{source}: '{k}' must be a non-empty list of [from, number, module, args] rows")
    if not isinstance(cfg["anchors"], (list, int)) or isinstance(cfg["anchors"], bool):
        raise NasError(f"{source}: anchors must be a list of w,h lists per level (or an anchor count per level)")
    cfg.pop("_source", None)
    cfg["_source"] = source
    return cfg


def build_model(model: str | Path | dict, nc: int | None = None, device: str | torch.device = "cpu",
                ch: int = 3) -> DetectionModel:
    """Build a DetectionModel; device="meta" builds shapes only (no weights), for counting."""
    cfg = load_cfg(model)
    source = cfg.pop("_source")
    if nc is not None and (not isinstance(nc, int) or nc < 1):
        raise NasError(f"--nc must be a positive integer, got {nc!r}")
    with torch.device(device):
        return DetectionModel(cfg, ch=ch, nc=nc, source=source)


def parse_imgsz(imgsz: int | str | tuple[int, int] | list[int], stride: int = 32) -> tuple[int, int]:
    """640, '640', '640x384' (height x width) or (h, w) -> (h, w), each a positive multiple of the stride."""
    if isinstance(imgsz, (tuple, list)):
        hw = tuple(imgsz)
    elif isinstance(imgsz, int):
        hw = (imgsz, imgsz)
    else:
        text = str(imgsz).lower().replace(" ", "")
        parts = text.split("x") if "x" in text else [text, text]
        try:
            hw = tuple(int(p) for p in parts)
        except ValueError:
            raise NasError(f"image size {imgsz!r} is not a number; use e.g. 640 or 640x384 (height x width)") from None
    if len(hw) != 2 or any(not isinstance(v, int) or v <= 0 for v in hw):
        raise NasError(f"image size {imgsz!r} must be one or two positive integers, e.g. 640 or 640x384")
    if any(v % stride for v in hw):
        fixed = "x".join(str(max(stride, round(v / stride) * stride)) for v in hw)
        raise NasError(f"image size {imgsz!r} must be a multiple of the model stride {stride}; try {fixed}")
    return int(hw[0]), int(hw[1])


__all__ = ["BUILTIN", "CFG_DIR", "build_model", "load_cfg", "model_source", "parse_imgsz", "read_yaml"]

"""Read YOLOv5 / nas checkpoints without running their code, and write checkpoints stock YOLOv5 v7.0 loads.

A YOLOv5 `train.py` checkpoint is a pickle of YOLOv5's own classes (`models.yolo.DetectionModel`, ...), which
are not importable here, and `torch.load(weights_only=False)` would run whatever the pickle names. `read_checkpoint`
unpickles with an allow-list instead: tensors are rebuilt by nas from the raw storage bytes, containers are plain
Python ones, and module classes become inert stand-ins that keep only parameters, buffers, children and a few
plain attributes (`yaml`, `nc`, `names`, `stride`, the layer wiring). Any other global refuses the file.
The unpickler is nas.weights.unpickler; writing is nas.weights.writer.
"""


from __future__ import annotations

import copy
import hashlib
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nas.errors import NasError
from nas.weights.unpickler import InertModule, Refused, load_legacy, load_zip
from nas.weights.writer import checkpoint_bytes, write_checkpoint

FORMATS = ("yolov5", "state_dict", "nas")


@dataclass
class Checkpoint:
    """What nas takes from a checkpoint file: float32 weights under YOLOv5's names, and the model's metadata."""

    path: Path
    sha256: str
    format: str  # "yolov5" | "state_dict" | "nas"
    state_dict: dict[str, torch.Tensor]
    yaml: dict | None = None
    nc: int | None = None
    names: list[str] | None = None
    stride: list[float] | None = None
    anchors: list[list[float]] | None = None  # pixels per level [w0, h0, w1, h1, ...], as in a model YAML
    weights_key: str = ""  # "ema", "model" (or "state_dict"), "" for a bare model or state dict


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a YOLOv5 v6.x/v7.0 train.py checkpoint, a plain state dict or a nas checkpoint, running none of
    its code; NasError naming the file and the problem otherwise."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NasError(f"{path}: checkpoint not found; check the path") from None
    except IsADirectoryError:
        raise NasError(f"{path}: is a folder, not a checkpoint file") from None
    except OSError as e:
        raise NasError(f"{path}: cannot read the checkpoint ({e.strerror or e})") from None
    if not data:
        raise NasError(f"{path}: empty file, not a checkpoint; write it again or choose another file")
    obj = _unpickle(path, data)
    ckpt = _interpret(path, obj)
    ckpt.sha256 = hashlib.sha256(data).hexdigest()
    return ckpt


def _unpickle(path: Path, data: bytes) -> Any:
    is_zip = data[:4] == b"PK\x03\x04"
    try:
        return load_zip(data) if is_zip else load_legacy(data)
    except Refused as e:
        raise NasError(f"{path}: refused to load: the pickle asks for {e.what}, which is not a tensor, a plain "
                       f"container or a YOLOv5/nas module class; nas reads only weights and never runs a "
                       f"checkpoint's code") from None
    except zipfile.BadZipFile as e:
        raise NasError(f"{path}: damaged zip archive ({e}); the file may be truncated: copy or download it "
                       f"again") from None
    except (EOFError, struct.error) as e:
        what = "truncated" if is_zip else "not a torch checkpoint (or a truncated one)"
        raise NasError(f"{path}: {what}: the data ends early ({e or 'end of file'})") from None
    except (pickle.UnpicklingError, ValueError, TypeError, IndexError, KeyError, AttributeError, RuntimeError,
            OverflowError, MemoryError, RecursionError, UnicodeDecodeError) as e:
        kind = "a zip archive that is not a valid torch checkpoint" if is_zip else "not a torch checkpoint"
        msg = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise NasError(f"{path}: {kind} ({msg})") from None


def _is_tensor_dict(d: Any) -> bool:
    return isinstance(d, dict) and bool(d) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                   for k, v in d.items())


def _interpret(path: Path, obj: Any) -> Checkpoint:
    fmt, key, model = "", "", None
    if isinstance(obj, dict) and ("model" in obj or "ema" in obj):
        key = "ema" if obj.get("ema") is not None else "model"
        model = obj.get(key)
        if isinstance(model, InertModule):
            fmt = "nas" if isinstance(obj.get("nas"), dict) else "yolov5"
        elif _is_tensor_dict(model):
            return _plain(path, model, key)
        else:
            raise NasError(f"{path}: its '{key}' entry is {_kind(model)}, not a model or a state dict; "
                           f"not a YOLOv5 checkpoint")
    elif isinstance(obj, InertModule):
        fmt, model = "yolov5", obj
    elif isinstance(obj, dict) and _is_tensor_dict(obj.get("state_dict")):
        return _plain(path, obj["state_dict"], "state_dict")
    elif _is_tensor_dict(obj):
        return _plain(path, obj, "")
    else:
        raise NasError(f"{path}: holds {_kind(obj)}, not a checkpoint (a YOLOv5 train.py checkpoint has 'model' "
                       f"and 'ema' entries; a state dict maps names to tensors)")
    sd = _module_state_dict(model)
    if not sd:
        raise NasError(f"{path}: the model under '{key or 'the file'}' holds no tensors")
    yaml_dict = getattr(model, "yaml", None)
    yaml_dict = yaml_dict if isinstance(yaml_dict, dict) else None
    detect = _detect(model)
    stride = _floats(getattr(model, "stride", None)) or _floats(getattr(detect, "stride", None))
    nc = getattr(model, "nc", None)
    if not isinstance(nc, int) and yaml_dict is not None:
        nc = yaml_dict.get("nc")
    return Checkpoint(path=path, sha256="", format=fmt, state_dict=sd, yaml=yaml_dict,
                      nc=nc if isinstance(nc, int) and not isinstance(nc, bool) else None,
                      names=_names(getattr(model, "names", None)), stride=stride,
                      anchors=_anchors(detect, stride) or _yaml_anchors(yaml_dict), weights_key=key)


def _plain(path: Path, sd: dict, key: str) -> Checkpoint:
    return Checkpoint(path=path, sha256="", format="state_dict", state_dict=_float32(sd), weights_key=key)


def _kind(x: Any) -> str:
    if isinstance(x, dict):
        return f"a dict with keys {', '.join(map(repr, list(x)[:6]))}" if x else "an empty dict"
    return "nothing (None)" if x is None else f"a {type(x).__name__}"


def _float32(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """YOLOv5's `.float()`: floating tensors to float32 (fresh copies), others (num_batches_tracked) kept."""
    return {k: (v.float() if v.is_floating_point() else v).clone() for k, v in sd.items()}


def _module_state_dict(m: InertModule) -> dict[str, torch.Tensor]:
    """nn.Module.state_dict's order and names on stand-ins: parameters, persistent buffers, then children."""
    out: dict[str, torch.Tensor] = {}

    def walk(mod: Any, prefix: str) -> None:
        skip = getattr(mod, "_non_persistent_buffers_set", set()) or set()
        for group, excluded in (("_parameters", set()), ("_buffers", skip)):
            for name, t in (getattr(mod, group, None) or {}).items():
                if isinstance(t, torch.Tensor) and name not in excluded:
                    out[prefix + name] = t
        for name, child in (getattr(mod, "_modules", None) or {}).items():
            if isinstance(child, InertModule):
                walk(child, f"{prefix}{name}.")

    walk(m, "")
    return _float32(out)


def _detect(model: InertModule) -> InertModule | None:
    layers = (getattr(model, "_modules", None) or {}).get("model")
    children = list((getattr(layers, "_modules", None) or {}).values())
    last = children[-1] if children else None
    return last if isinstance(getattr(last, "_buffers", {}).get("anchors"), torch.Tensor) else None


def _floats(t: Any) -> list[float] | None:
    if isinstance(t, torch.Tensor) and t.numel() and t.is_floating_point():
        return [float(v) for v in t.float().flatten()]
    return None


def _num(v: float) -> float | int:
    v = round(v, 4)
    return int(v) if v == int(v) else v


def _anchors(detect: InertModule | None, stride: list[float] | None) -> list[list[float]] | None:
    """Detect's anchors buffer (grid units, (nl, na, 2)) times the stride: pixel anchors as the YAML writes them."""
    if detect is None:
        return None
    a = detect._buffers["anchors"].float()
    s = _floats(getattr(detect, "stride", None)) or stride
    if a.dim() != 3 or a.shape[-1] != 2 or not s or len(s) != a.shape[0]:
        return None
    return [[_num(float(v)) for v in (a[i] * s[i]).flatten()] for i in range(a.shape[0])]


def _yaml_anchors(yaml_dict: dict | None) -> Any:
    return copy.deepcopy(yaml_dict.get("anchors")) if yaml_dict else None


def _names(names: Any) -> list[str] | None:
    """YOLOv5 v7.0 keeps names as {index: name}, older ones as a list."""
    if isinstance(names, dict) and all(isinstance(k, int) for k in names):
        return [str(names[k]) for k in sorted(names)]
    if isinstance(names, (list, tuple)):
        return [str(n) for n in names]
    return None


__all__ = ["Checkpoint", "FORMATS", "InertModule", "checkpoint_bytes", "read_checkpoint", "write_checkpoint"]

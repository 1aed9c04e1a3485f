"""Write checkpoints stock YOLOv5 v7.0 loads: a nas DetectionModel pickled as YOLOv5 v7.0's train.py leaves
`best.pt` (after `strip_optimizer`), nas's module classes written under YOLOv5's module paths (nas.model mirrors
them)."""

from __future__ import annotations

import copy
import datetime
import io
import pickle
import types
from pathlib import Path
from typing import Any

import torch

from nas.errors import NasError
from nas.files import write_bytes
from nas.model import DetectionModel, common, yolo

NAS_FORMAT_VERSION = 1


def _yolov5_globals() -> dict[type, tuple[str, str]]:
    """nas's model classes -> where YOLOv5 v7.0 defines the class of the same name."""
    out: dict[type, tuple[str, str]] = {yolo.DetectionModel: ("models.yolo", "DetectionModel"),
                                        yolo.Detect: ("models.yolo", "Detect")}
    for name, cls in vars(common).items():
        if isinstance(cls, type) and issubclass(cls, torch.nn.Module) and cls.__module__ == common.__name__:
            out[cls] = ("models.experimental" if name == "MixConv2d" else "models.common", name)
    return out


class _YoloPickler(pickle._Pickler):  # the Python pickler: its save_global can be overridden
    """Writes nas's model classes as references to YOLOv5's (`models.common.Conv`, ...); refuses any other
    nas.* global, which a YOLOv5 checkout could not import."""

    renames: dict[type, tuple[str, str]] = {}

    def save_global(self, obj: Any, name: str | None = None) -> None:
        if obj in self.renames:
            module, qualname = self.renames[obj]
            self.write(pickle.GLOBAL + f"{module}\n{qualname}\n".encode("ascii"))
            self.memoize(obj)
            return
        if (getattr(obj, "__module__", "") or "").split(".")[0] == "nas":
            raise pickle.PicklingError(f"{obj.__module__}.{getattr(obj, '__qualname__', name)} has no YOLOv5 "
                                       f"counterpart; a YOLOv5 checkout could not load it")
        super().save_global(obj, name)


def checkpoint_bytes(model: torch.nn.Module, names: list[str] | None = None,
                     nas: dict[str, Any] | None = None) -> bytes:
    """The bytes of a YOLOv5 v7.0 `best.pt` (train.py after strip_optimizer) holding `model` in fp16."""
    if not isinstance(model, DetectionModel):
        raise TypeError(f"write_checkpoint takes a nas DetectionModel, got {type(model).__name__}")
    m = copy.deepcopy(model).cpu().half().eval()  # strip_optimizer: the EMA (eval) model in fp16
    for attr in ("source", "layers_info"):  # nas's build notes; YOLOv5 has no such attributes
        m.__dict__.pop(attr, None)
    for p in m.parameters():
        p.requires_grad = False
    names = list(names) if names is not None else list(getattr(model, "names", []) or [])
    if len(names) != m.nc:
        raise NasError(f"{len(names)} class names for a model of nc={m.nc}; give one name per class")
    m.names = dict(enumerate(str(n) for n in names))  # v7.0 train.py sets the dataset's {index: name}
    ckpt = {"epoch": -1, "best_fitness": None, "model": m, "ema": None, "updates": None, "optimizer": None,
            "opt": {}, "git": None, "date": datetime.datetime.now().isoformat(),
            "nas": {"format": NAS_FORMAT_VERSION, **(nas or {})}}
    renames = _yolov5_globals()
    pickler = type("_Pickler", (_YoloPickler,), {"renames": renames})
    buf = io.BytesIO()
    torch.save(ckpt, buf, pickle_module=types.SimpleNamespace(__name__="nas.weights", Pickler=pickler))
    return buf.getvalue()


def write_checkpoint(model: torch.nn.Module, path: str | Path, names: list[str] | None = None,
                     option: str = "--out", nas: dict[str, Any] | None = None) -> Path:
    """Write `model` as YOLOv5 v7.0 train.py's final checkpoint, loadable by stock YOLOv5 (its blocks, if any,
    need nas installed and registered); `nas` adds plain metadata under the checkpoint's 'nas' key."""
    return write_bytes(path, checkpoint_bytes(model, names, nas), option)


__all__ = ["NAS_FORMAT_VERSION", "checkpoint_bytes", "write_checkpoint"]

"""Read YOLOv5 / nas checkpoints without running their code, and write checkpoints stock YOLOv5 v7.0 loads.

A YOLOv5 `train.py` checkpoint is a pickle of YOLOv5's own classes (`models.yolo.DetectionModel`, ...), which
are not importable here, and `torch.load(weights_only=False)` would run whatever the pickle names. `read_checkpoint`
unpickles with an allow-list instead: tensors are rebuilt by nas from the raw storage bytes, containers are plain
Python ones, and module classes become inert stand-ins that keep only parameters, buffers, children and a few
plain attributes (`yaml`, `nc`, `names`, `stride`, the layer wiring). Any other global refuses the file.

`write_checkpoint` pickles a nas DetectionModel as YOLOv5 v7.0's train.py leaves `best.pt` (after
`strip_optimizer`), with nas's module classes written under YOLOv5's module paths (nas.model mirrors them).
"""

from __future__ import annotations

import _compat_pickle
import copy
import datetime
import hashlib
import io
import pickle
import struct
import sys
import types
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nas.errors import NasError

FORMATS = ("yolov5", "state_dict", "nas")
NAS_FORMAT_VERSION = 1

# ---------------------------------------------------------------------------------------------------------------
# Reading

_STORAGE_DTYPES = {
    "DoubleStorage": torch.float64, "FloatStorage": torch.float32, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
    "ComplexDoubleStorage": torch.complex128, "ComplexFloatStorage": torch.complex64, "UntypedStorage": torch.uint8,
}
_DTYPES = {str(t).removeprefix("torch."): t for t in (
    torch.float16, torch.float32, torch.float64, torch.bfloat16, torch.complex64, torch.complex128, torch.uint8,
    torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)}
# where a pickled module class may live: YOLOv5's model files, torch.nn's layers, nas's own model and blocks
_MODULE_PACKAGES = ("models.yolo", "models.common", "models.experimental", "torch.nn.modules", "nas.model", "blocks")
# the only attributes a stand-in keeps (everything else a module pickles is dropped unread)
_KEPT_ATTRS = frozenset({"_parameters", "_buffers", "_modules", "_non_persistent_buffers_set", "training",
                         "yaml", "nc", "names", "stride", "i", "f", "type"})


class InertModule:
    """Stand-in for a pickled module class: keeps parameters, buffers, children and plain attributes; runs
    nothing of the class it stands for (`qualname` says which that was)."""

    qualname = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> InertModule:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            for k, v in state.items():
                if k in _KEPT_ATTRS:
                    self.__dict__[k] = v

    def __repr__(self) -> str:
        return f"<inert {self.qualname}>"


class _Ignored:
    """Stand-in for values nas does not need (numpy arrays in `best_fitness`, ...): swallows its arguments."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Ignored:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


class _Marker:
    """A class the pickle names only as a type argument (Parameter, Tensor) or a storage type."""

    def __init__(self, name: str, dtype: torch.dtype | None = None):
        self.name, self.dtype = name, dtype


_PARAMETER, _TENSOR = _Marker("torch.nn.parameter.Parameter"), _Marker("torch.Tensor")


def _path_str(*parts: Any) -> str:
    return "/".join(str(p) for p in parts)


def _rebuild_tensor(storage: torch.Tensor, storage_offset: int, size: tuple, stride: tuple,
                    *_: Any) -> torch.Tensor:
    """torch._utils._rebuild_tensor(_v2): a view of the flat storage tensor (no hooks, no metadata)."""
    if not isinstance(storage, torch.Tensor):
        raise pickle.UnpicklingError("a tensor whose storage is not a stored tensor record")
    if storage.numel() == 0 and 0 in tuple(size):
        return torch.empty(tuple(size), dtype=storage.dtype)
    return storage.as_strided(tuple(size), tuple(stride), storage_offset)


def _rebuild_parameter(data: torch.Tensor, requires_grad: bool, *_: Any) -> torch.Tensor:
    """torch._utils._rebuild_parameter(_with_state): nas keeps the tensor (the state dict holds tensors)."""
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError("a parameter whose data is not a tensor")
    return data


def _rebuild_from_type_v2(func: Callable, new_type: Any, args: tuple, state: Any) -> torch.Tensor:
    """torch._tensor._rebuild_from_type_v2, only for plain tensors and parameters."""
    if new_type not in (_PARAMETER, _TENSOR) or func not in (_rebuild_tensor, _rebuild_parameter):
        raise pickle.UnpicklingError("a tensor subclass, which nas does not read")
    return func(*args)


_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "complex"): complex,
    ("_codecs", "encode"): lambda s, encoding="latin1": s.encode(encoding) if isinstance(s, str) else bytes(s),
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("torch", "Tensor"): _TENSOR,
    ("torch._tensor", "Tensor"): _TENSOR,
    ("torch.nn.parameter", "Parameter"): _PARAMETER,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    # pathlib values in `opt` become strings; numpy values (train.py's best_fitness) and argparse are dropped
    **{("pathlib", n): _path_str for n in ("Path", "PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath")},
    **{(m, n): _Ignored for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("_reconstruct",
                                                                                               "scalar")},
    ("numpy", "ndarray"): _Ignored,
    ("numpy", "dtype"): _Ignored,
    ("argparse", "Namespace"): _Ignored,
}
_STAND_INS: dict[str, type] = {}


def _stand_in(qualname: str) -> type:
    if qualname not in _STAND_INS:
        _STAND_INS[qualname] = type(qualname.rpartition(".")[2], (InertModule,), {"qualname": qualname})
    return _STAND_INS[qualname]


def _is_module_class(module: str, name: str) -> bool:
    inside = any(module == p or module.startswith(p + ".") for p in _MODULE_PACKAGES)
    return inside and name.isidentifier() and name[:1].isupper()


class _Refused(pickle.UnpicklingError):
    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


class _SafeUnpickler(pickle.Unpickler):
    """pickle.Unpickler resolving globals only from the allow-list; storages come from `storages`."""

    def __init__(self, file: io.BytesIO, storages: Callable[[tuple], torch.Tensor]):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        # protocol 2 pickles (torch.save's default) name Python 2 modules: __builtin__.set, ...
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _Marker(f"torch.{name}", _STORAGE_DTYPES[name])
        if module == "torch" and name in _DTYPES:
            return _DTYPES[name]
        if _is_module_class(module, name):
            return _stand_in(f"{module}.{name}")
        raise _Refused(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid or pid[0] not in ("storage", b"storage"):
            raise pickle.UnpicklingError(f"an unknown persistent record {str(pid)[:60]!r}")
        return self._storages(pid[1:])


def _storage_dtype(storage_type: Any) -> torch.dtype:
    if not isinstance(storage_type, _Marker) or storage_type.dtype is None:
        raise pickle.UnpicklingError(f"a storage of unknown type {storage_type!r}")
    return storage_type.dtype


def _from_bytes(raw: bytes, dtype: torch.dtype, big_endian: bool) -> torch.Tensor:
    size = torch.empty((), dtype=dtype).element_size()
    if len(raw) % size:
        raise pickle.UnpicklingError(f"a {dtype} storage of {len(raw)} bytes")
    if not raw:
        return torch.empty(0, dtype=dtype)
    flat = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    if big_endian != (sys.byteorder == "big") and size > 1:
        flat = flat.view(-1, size).flip(1).reshape(-1)
    return flat.view(dtype)


def _load_zip(data: bytes) -> Any:
    """torch.save's zip format: <archive>/data.pkl and one record <archive>/data/<key> per storage."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        pkl = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
        if len(pkl) != 1:
            raise ValueError("no data.pkl record: a zip file, not a torch checkpoint")
        prefix = pkl[0][: -len("data.pkl")]
        names = set(zf.namelist())
        big = prefix + "byteorder" in names and zf.read(prefix + "byteorder").strip() == b"big"
        loaded: dict[str, torch.Tensor] = {}

        def storage(args: tuple) -> torch.Tensor:
            storage_type, key, _location, numel = args[:4]
            dtype = _storage_dtype(storage_type)
            key = key.decode() if isinstance(key, bytes) else str(key)
            if key not in loaded:
                record = f"{prefix}data/{key}"
                if record not in names:
                    raise pickle.UnpicklingError(f"the tensor record {record} is missing")
                t = _from_bytes(zf.read(record), dtype, big)
                if t.numel() < int(numel):
                    raise pickle.UnpicklingError(f"the tensor record {record} is shorter than its {numel} elements")
                loaded[key] = t
            return loaded[key]

        return _SafeUnpickler(io.BytesIO(zf.read(pkl[0])), storage).load()


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def _load_legacy(data: bytes) -> Any:
    """torch.save(..., _use_new_zipfile_serialization=False): magic, version, sys info, the object, the storage
    keys, then each storage as an int64 element count and its bytes (little-endian)."""
    f = io.BytesIO(data)
    if _SafeUnpickler(f, _no_storage).load() != _LEGACY_MAGIC:
        raise ValueError("a pickle, but not a torch checkpoint")
    _SafeUnpickler(f, _no_storage).load()  # protocol version
    sys_info = _SafeUnpickler(f, _no_storage).load()
    big = isinstance(sys_info, dict) and not sys_info.get("little_endian", True)
    storages: dict[str, torch.Tensor] = {}

    def storage(args: tuple) -> torch.Tensor:
        storage_type, key, _location, numel = args[:4]
        dtype, key = _storage_dtype(storage_type), str(key)
        if key not in storages:
            nbytes = int(numel) * torch.empty((), dtype=dtype).element_size()
            if nbytes > len(data):
                raise pickle.UnpicklingError(f"a storage of {numel} elements in a file of {len(data)} bytes")
            storages[key] = torch.empty(int(numel), dtype=dtype)  # filled once the object is read
        view = args[4] if len(args) > 4 else None
        if view is not None:  # (view key, offset, size)
            return storages[key][int(view[1]): int(view[1]) + int(view[2])]
        return storages[key]

    obj = _SafeUnpickler(f, storage).load()
    for key in _SafeUnpickler(f, _no_storage).load():
        key = str(key)
        head = f.read(8)
        if key not in storages or len(head) != 8:
            raise pickle.UnpicklingError(f"storage {key} is missing from the file")
        t = storages[key]
        (numel,) = struct.unpack("<q", head)
        raw = f.read(t.numel() * t.element_size())
        if numel != t.numel() or len(raw) != t.numel() * t.element_size():
            raise EOFError(f"storage {key} is cut short")
        t.view(torch.uint8).view(-1).copy_(_from_bytes(raw, t.dtype, big).view(torch.uint8).view(-1))
    return obj


def _no_storage(args: tuple) -> torch.Tensor:
    raise pickle.UnpicklingError("a tensor outside the object record")


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
        return _load_zip(data) if is_zip else _load_legacy(data)
    except _Refused as e:
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


# ---------------------------------------------------------------------------------------------------------------
# Writing


def _yolov5_globals() -> dict[type, tuple[str, str]]:
    """nas's model classes -> where YOLOv5 v7.0 defines the class of the same name."""
    from nas.model import common, yolo

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
    from nas.model import DetectionModel

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
    from nas.files import write_bytes

    return write_bytes(path, checkpoint_bytes(model, names, nas), option)


__all__ = ["Checkpoint", "FORMATS", "InertModule", "checkpoint_bytes", "read_checkpoint", "write_checkpoint"]

"""The allow-list unpickler behind `read_checkpoint`: torch's zip (and legacy) checkpoint formats read with
`zipfile` and a `pickle.Unpickler` that resolves only tensor rebuilders (reimplemented here from the raw storage
bytes), storage types, dtypes, plain containers and module classes, which become inert stand-ins keeping only
parameters, buffers, children and a few plain attributes. Any other global raises `Refused`."""

from __future__ import annotations

import _compat_pickle
import io
import pickle
import struct
import sys
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch

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
    return inside and name.isidentifier() and name.lstrip("_")[:1].isupper()  # blocks.ge._GatherNorm too


class Refused(pickle.UnpicklingError):
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
        raise Refused(f"{module}.{name}")

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


def load_zip(data: bytes) -> Any:
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


def load_legacy(data: bytes) -> Any:
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


__all__ = ["InertModule", "Refused", "load_legacy", "load_zip"]

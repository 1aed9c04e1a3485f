"""YOLOv5 v7.0 `parse_model`: the rows of a model YAML -> layers, with the same wiring, rounding and arguments.

What it adds to YOLOv5's is validation: every problem in a row becomes a NasError that names the file, the
layer and the fix. Also the YAML's own rules every stage shares: `from` indices and the width rounding.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import math
from dataclasses import dataclass, field
from typing import Any

from torch import nn

import blocks
from nas.errors import NasError
from nas.model.common import (
    C3,
    C3SPP,
    C3TR,
    SPP,
    SPPF,
    Bottleneck,
    BottleneckCSP,
    C3Ghost,
    C3x,
    Concat,
    Contract,
    Conv,
    CrossConv,
    DWConv,
    DWConvTranspose2d,
    Expand,
    Focus,
    GhostBottleneck,
    GhostConv,
    MixConv2d,
)
from nas.model.detect import Detect


def source_index(f: int, i: int) -> int:
    """The absolute index of the layer a `from` entry f of layer i reads (-1 is the layer before i)."""
    return i + f if f < 0 else f


def layer_inputs(f: int | list[int], x: Any, y: list[Any]) -> Any:
    """What a layer with `from` f reads: x (the previous output) for -1, else saved outputs y[j]."""
    if f == -1:
        return x
    return y[f] if isinstance(f, int) else [x if j == -1 else y[j] for j in f]


def make_divisible(x: float, divisor: int = 8) -> int:
    """The YOLOv5 width rule: round x up to a multiple of divisor."""
    return math.ceil(x / divisor) * divisor



CHANNEL_MODULES = {
    Conv, GhostConv, Bottleneck, GhostBottleneck, SPP, SPPF, DWConv, MixConv2d, Focus, CrossConv,
    BottleneckCSP, C3, C3TR, C3SPP, C3Ghost, nn.ConvTranspose2d, DWConvTranspose2d, C3x,
}
# Of those, the ones that repeat internally: n becomes their third argument.
REPEAT_MODULES = {BottleneckCSP, C3, C3TR, C3Ghost, C3x}

MODULES: dict[str, type[nn.Module]] = {
    cls.__name__: cls
    for cls in (
        Conv, GhostConv, Bottleneck, GhostBottleneck, SPP, SPPF, DWConv, MixConv2d, Focus, CrossConv,
        BottleneckCSP, C3, C3TR, C3SPP, C3Ghost, DWConvTranspose2d, C3x, Concat, Contract, Expand, Detect,
    )
}

REQUIRED_KEYS = ("nc", "depth_multiple", "width_multiple", "anchors", "backbone", "head")


@dataclass
class LayerInfo:
    """What parse_model decided for one YAML row (shown by `nas profile`)."""

    i: int
    f: int | list[int]
    n: int
    module: str
    args: list[Any]
    c2: int
    params: int = 0
    block: str | None = None  # canonical attention-block name when the row is a block
    hyperparameters: dict[str, Any] = field(default_factory=dict)


def layer_where(source: str | None, i: int | None = None, module: str | None = None) -> str:
    place = source or "model YAML"
    if i is not None:
        place += f": layer {i}"
        if module:
            place += f" ({module})"
    return place


def _resolve_module(name: Any, source: str | None, i: int):
    """A YAML module name -> (class or None, block spec or None, display name)."""
    if not isinstance(name, str):
        raise NasError(f"{layer_where(source, i)}: module must be a name such as C3 or nn.Upsample, got {name!r}")
    short = name.removeprefix("torch.").removeprefix("models.common.").removeprefix("models.yolo.")
    if short.startswith("nn."):
        cls = getattr(nn, short[3:], None)
        if isinstance(cls, type) and issubclass(cls, nn.Module):
            return cls, None, short
    elif short in MODULES:
        return MODULES[short], None, short
    else:
        try:
            spec = blocks.resolve(short)
        except blocks.BlockError:
            spec = None
        if spec is not None:
            return None, spec, short
    known = sorted(MODULES) + ["nn.<Module>"] + sorted(blocks.REGISTRY) + sorted(blocks.ALIASES)
    raise NasError(f"{layer_where(source, i)}: unknown module {name!r}; known modules: {', '.join(known)}")


def _eval_arg(a: Any, nc: int, anchors: Any) -> Any:
    """YOLOv5 evaluates string arguments: 'nc', 'anchors', 'None', literals; other strings stay strings."""
    if not isinstance(a, str):
        return a
    if a == "nc":
        return nc
    if a == "anchors":
        return anchors
    with contextlib.suppress(ValueError, SyntaxError):
        return ast.literal_eval(a)
    return a


def _check_from(f: Any, i: int, source: str | None, module: str) -> None:
    where = layer_where(source, i, module)
    fs = [f] if isinstance(f, int) and not isinstance(f, bool) else f
    if not isinstance(fs, list) or not fs or not all(isinstance(j, int) and not isinstance(j, bool) for j in fs):
        raise NasError(f"{where}: 'from' must be an integer or a list of integers, got {f!r}")
    for j in fs:
        if i == 0 and j != -1:
            raise NasError(f"{where}: the first layer must read the input image ('from' -1), got {j}")
        if j >= i:
            raise NasError(f"{where}: 'from' {j} points forward; a layer can only read earlier layers (0..{i - 1})")
        if j < -i and i > 0:
            raise NasError(f"{where}: 'from' {j} is out of range; layer {i} has only {i} layers before it")


def _signature_hint(cls: type) -> str:
    try:
        params = list(inspect.signature(cls.__init__).parameters)[1:]
    except (TypeError, ValueError):
        return cls.__name__
    return f"{cls.__name__}({', '.join(params)})"


def parse_model(d: dict, ch: list[int], source: str | None = None) -> tuple[nn.Sequential, list[int], list[LayerInfo]]:
    """Build the layers of a YOLOv5 model dict; returns (layers, save list, per-layer info)."""
    anchors, nc, gd, gw = d["anchors"], d["nc"], d["depth_multiple"], d["width_multiple"]
    na = (len(anchors[0]) // 2) if isinstance(anchors, list) else anchors
    no = na * (nc + 5)
    layers, save, infos = [], [], []
    rows = list(d["backbone"]) + list(d["head"])
    act = d.get("activation")
    old_act = Conv.default_act
    if act:
        Conv.default_act = _parse_activation(act, source)
    try:
        for i, row in enumerate(rows):
            if not isinstance(row, (list, tuple)) or len(row) != 4:
                raise NasError(f"{layer_where(source, i)}: each row must be [from, number, module, args], got {row!r}")
            f, n, mname, args = row
            m, spec, display = _resolve_module(mname, source, i)
            where = layer_where(source, i, display)
            _check_from(f, i, source, display)
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise NasError(f"{where}: 'number' must be a positive integer, got {n!r}")
            if args is None:
                args = []
            if not isinstance(args, list):
                raise NasError(f"{where}: 'args' must be a list, got {args!r}")
            args = [_eval_arg(a, nc, anchors) for a in args]
            n = n_ = max(round(n * gd), 1) if n > 1 else n
            fs = [f] if isinstance(f, int) else f
            if not isinstance(f, int) and (spec is not None or m in CHANNEL_MODULES or
                                           m in (nn.BatchNorm2d, Contract, Expand)):
                raise NasError(f"{where}: {display} reads one layer; 'from' must be one index, got {f!r}")
            block_hp: dict[str, Any] = {}

            if spec is not None:
                factory, c2, args, block_hp = _block_row(spec, display, args, ch[f], gw, no, where)
            elif m in CHANNEL_MODULES:
                if not args or not isinstance(args[0], (int, float)) or isinstance(args[0], bool):
                    raise NasError(f"{where}: the first argument must be the output channel count, got {args!r}; "
                                   f"expected {_signature_hint(m)} without c1")
                c1, c2 = ch[f], args[0]
                if c2 != no:
                    c2 = make_divisible(c2 * gw, 8)
                args = [c1, c2, *args[1:]]
                if m in REPEAT_MODULES:
                    args.insert(2, n)
                    n = 1
                factory = _factory(m, args, where)
            elif m is nn.BatchNorm2d:
                args = [ch[f]]
                c2 = ch[f]
                factory = _factory(m, args, where)
            elif m is Concat:
                c2 = sum(ch[x] for x in fs)
                factory = _factory(m, args, where)
            elif m is Detect:
                if len(args) < 2:
                    raise NasError(f"{where}: Detect takes [nc, anchors], got {args!r}")
                if isinstance(args[1], int):
                    args[1] = [list(range(args[1] * 2))] * len(fs)
                _check_anchors(args[1], len(fs), where)
                args.append([ch[x] for x in fs])
                c2 = no
                factory = _factory(m, args, where)
            elif m is Contract:
                c2 = ch[f] * (args[0] if args else 2) ** 2
                factory = _factory(m, args, where)
            elif m is Expand:
                c2 = ch[f] // (args[0] if args else 2) ** 2
                factory = _factory(m, args, where)
            else:
                c2 = ch[f] if isinstance(f, int) else ch[fs[0]]
                factory = _factory(m, args, where)

            m_ = nn.Sequential(*(factory() for _ in range(n))) if n > 1 else factory()
            t = display if spec is None else spec.name
            np_ = sum(x.numel() for x in m_.parameters())
            m_.i, m_.f, m_.type, m_.np = i, f, t, np_
            save.extend(x % i for x in fs if x != -1)
            layers.append(m_)
            shown_args = [a for a in args if not isinstance(a, nn.Module)]
            infos.append(LayerInfo(i, f, n_, t, shown_args, c2, np_, spec.name if spec else None, block_hp))
            if i == 0:
                ch = []
            ch.append(c2)
    finally:
        Conv.default_act = old_act
    if not layers or not isinstance(layers[-1], Detect):
        raise NasError(f"{layer_where(source)}: the last layer of 'head' must be Detect, e.g. [[17, 20, 23], 1, "
                       f"Detect, [nc, anchors]]")
    return nn.Sequential(*layers), sorted(save), infos


def _factory(m: type, args: list, where: str):
    """A zero-argument constructor for the row, with constructor errors turned into NasError."""
    try:
        inspect.signature(m).bind(*args)
    except TypeError as e:
        raise NasError(f"{where}: wrong arguments {args!r} ({e}); expected {_signature_hint(m)}") from None
    except ValueError:
        pass

    def build():
        try:
            return m(*args)
        except (TypeError, ValueError, RuntimeError, ZeroDivisionError) as e:
            raise NasError(f"{where}: cannot build with arguments {args!r}: {e}") from None

    return build


def _block_row(spec, display: str, args: list, c1: int, gw: float, no: int, where: str):
    """An attention-block row [channels, *hyperparameters] -> (factory, c2, shown args, hyperparameters)."""
    if not args or not isinstance(args[0], int) or isinstance(args[0], bool):
        raise NasError(f"{where}: the first argument of {display} must be its channel count, got {args!r}; "
                       f"e.g. [-1, 1, {display}, [{c1}]]")
    c2 = args[0]
    if c2 != no:
        c2 = make_divisible(c2 * gw, 8)
    if not spec.changes_channels and c2 != c1:
        raise NasError(f"{where}: {display} has {c2} channels after width scaling ({args[0]} x {gw}) but its input "
                       f"has {c1}; set the first argument to {round(c1 / gw)} so that it keeps the input's width")
    try:
        hp = blocks.yaml_hyperparameters(display, c1, list(args[1:]))
        blocks.validate(display, c1, hp)
    except blocks.BlockError as e:
        raise NasError(f"{where}: {e}") from None

    def build():
        try:
            return blocks.build(display, c1, c2=c2, **hp)
        except blocks.BlockError as e:
            raise NasError(f"{where}: {e}") from None

    shown = [c1, c2] if spec.changes_channels else [c1]
    shown += [f"{k}={v}" for k, v in hp.items()]
    return build, c2, shown, hp


def _check_anchors(anchors: Any, nf: int, where: str) -> None:
    ok = isinstance(anchors, list) and anchors and all(
        isinstance(a, list) and a and len(a) % 2 == 0 and all(isinstance(v, (int, float)) for v in a) for a in anchors
    )
    if not ok or len({len(a) for a in anchors}) != 1:
        raise NasError(f"{where}: anchors must be one list of w,h pairs per level (all levels the same length), "
                       f"got {anchors!r}")
    if len(anchors) != nf:
        raise NasError(f"{where}: Detect reads {nf} layers but anchors has {len(anchors)} levels; give one anchor "
                       f"row per input layer")


def _parse_activation(act: Any, source: str | None) -> nn.Module:
    """The YAML `activation` key, e.g. 'nn.LeakyReLU(0.1)' or 'nn.SiLU()'."""
    if isinstance(act, str):
        try:
            node = ast.parse(act, mode="eval").body
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    isinstance(node.func.value, ast.Name) and node.func.value.id == "nn":
                cls = getattr(nn, node.func.attr, None)
                pos = [ast.literal_eval(a) for a in node.args]
                kw = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
                if isinstance(cls, type) and issubclass(cls, nn.Module):
                    return cls(*pos, **kw)
        except (SyntaxError, ValueError, TypeError):
            pass
    raise NasError(f"{layer_where(source)}: activation must look like 'nn.SiLU()' or 'nn.LeakyReLU(0.1)', got {act!r}")


__all__ = ["CHANNEL_MODULES", "MODULES", "REPEAT_MODULES", "REQUIRED_KEYS", "LayerInfo", "layer_inputs", "layer_where",
           "make_divisible", "parse_model", "source_index"]

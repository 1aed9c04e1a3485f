"""YOLOv5 v7.0 model YAML -> nn.Module, with the same layer order, wiring, rounding and initialisation.

`parse_model` follows ultralytics/yolov5 v7.0 `models/yolo.py` semantics; what it adds is validation: every
problem in a YAML becomes a NasError that names the file, the layer and the fix.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import math
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from nas.errors import NasError
from nas.model import common
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


class Detect(nn.Module):
    """YOLOv5 detection head: one 1x1 conv per level predicting na x (xywh, obj, nc classes)."""

    stride: torch.Tensor | None = None
    dynamic = False
    export = False

    def __init__(self, nc: int = 80, anchors=(), ch=(), inplace: bool = True):
        super().__init__()
        self.nc = nc
        self.no = nc + 5
        self.nl = len(anchors)
        self.na = len(anchors[0]) // 2
        self.grid = [torch.empty(0) for _ in range(self.nl)]
        self.anchor_grid = [torch.empty(0) for _ in range(self.nl)]
        self.register_buffer("anchors", torch.tensor(anchors).float().view(self.nl, -1, 2))  # (nl, na, 2)
        self.m = nn.ModuleList(nn.Conv2d(x, self.no * self.na, 1) for x in ch)
        self.inplace = inplace

    def forward(self, x: list[torch.Tensor]):
        z = []
        for i in range(self.nl):
            x[i] = self.m[i](x[i])
            bs, _, ny, nx = x[i].shape
            x[i] = x[i].view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
            if not self.training:
                if self.dynamic or self.grid[i].shape[2:4] != x[i].shape[2:4]:
                    self.grid[i], self.anchor_grid[i] = self._make_grid(nx, ny, i)
                xy, wh, conf = x[i].sigmoid().split((2, 2, self.nc + 1), 4)
                xy = (xy * 2 + self.grid[i]) * self.stride[i]
                wh = (wh * 2) ** 2 * self.anchor_grid[i]
                y = torch.cat((xy, wh, conf), 4)
                z.append(y.view(bs, self.na * nx * ny, self.no))
        if self.training:
            return x
        return (torch.cat(z, 1),) if self.export else (torch.cat(z, 1), x)

    def _make_grid(self, nx: int, ny: int, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        d, t = self.anchors[i].device, self.anchors[i].dtype
        shape = 1, self.na, ny, nx, 2
        y, x = torch.arange(ny, device=d, dtype=t), torch.arange(nx, device=d, dtype=t)
        yv, xv = torch.meshgrid(y, x, indexing="ij")
        grid = torch.stack((xv, yv), 2).expand(shape) - 0.5  # offset so that xy = 2*sigmoid - 0.5
        anchor_grid = (self.anchors[i] * self.stride[i].to(d)).view((1, self.na, 1, 1, 2)).expand(shape)
        return grid, anchor_grid


# Modules whose first argument is the output channel count (width-scaled) and which take c1 first.
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


def _where(source: str | None, i: int | None = None, module: str | None = None) -> str:
    place = source or "model YAML"
    if i is not None:
        place += f": layer {i}"
        if module:
            place += f" ({module})"
    return place


def _resolve_module(name: Any, source: str | None, i: int):
    """A YAML module name -> (class or None, block spec or None, display name)."""
    if not isinstance(name, str):
        raise NasError(f"{_where(source, i)}: module must be a name such as C3 or nn.Upsample, got {name!r}")
    short = name.removeprefix("torch.").removeprefix("models.common.").removeprefix("models.yolo.")
    if short.startswith("nn."):
        cls = getattr(nn, short[3:], None)
        if isinstance(cls, type) and issubclass(cls, nn.Module):
            return cls, None, short
    elif short in MODULES:
        return MODULES[short], None, short
    else:
        import blocks

        try:
            spec = blocks.resolve(short)
        except blocks.BlockError:
            spec = None
        if spec is not None:
            return None, spec, short
    known = sorted(MODULES) + ["nn.<Module>"]
    try:
        import blocks

        known += sorted(blocks.REGISTRY) + sorted(blocks.ALIASES)
    except (ImportError, AttributeError):
        pass
    raise NasError(f"{_where(source, i)}: unknown module {name!r}; known modules: {', '.join(known)}")


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
    where = _where(source, i, module)
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
                raise NasError(f"{_where(source, i)}: each row must be [from, number, module, args], got {row!r}")
            f, n, mname, args = row
            m, spec, display = _resolve_module(mname, source, i)
            where = _where(source, i, display)
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
        raise NasError(f"{_where(source)}: the last layer of 'head' must be Detect, e.g. [[17, 20, 23], 1, Detect, "
                       f"[nc, anchors]]")
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
    import blocks

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
    raise NasError(f"{_where(source)}: activation must look like 'nn.SiLU()' or 'nn.LeakyReLU(0.1)', got {act!r}")


def check_anchor_order(m: Detect) -> None:
    """Flip the anchors if their order disagrees with the stride order (YOLOv5 autoanchor check)."""
    a = m.anchors.prod(-1).mean(-1).view(-1)
    da = a[-1] - a[0]
    ds = m.stride[-1] - m.stride[0]
    if da and (da.sign() != ds.sign()):
        m.anchors[:] = m.anchors.flip(0)


def initialize_weights(model: nn.Module) -> None:
    """YOLOv5's post-build settings: BatchNorm eps 1e-3 and momentum 0.03, in-place activations."""
    for m in model.modules():
        t = type(m)
        if t is nn.BatchNorm2d:
            m.eps = 1e-3
            m.momentum = 0.03
        elif t in (nn.Hardswish, nn.LeakyReLU, nn.ReLU, nn.ReLU6, nn.SiLU):
            m.inplace = True


@contextlib.contextmanager
def meta_fast_norms():
    """Within the block, BatchNorm passes meta tensors through unchanged.

    BatchNorm does no multiply-accumulates that we count, and its meta kernel is a slow Python
    decomposition (~2 ms a call), which would dominate the cost of counting a candidate's FLOPs.
    Real tensors are unaffected.
    """
    original = _BatchNorm.forward

    def forward(self, x):
        return x if x.device.type == "meta" else original(self, x)

    _BatchNorm.forward = forward
    try:
        yield
    finally:
        _BatchNorm.forward = original


class DetectionModel(nn.Module):
    """A YOLOv5 detection model built from a model YAML dict (ultralytics v7.0 semantics)."""

    def __init__(self, cfg: dict, ch: int = 3, nc: int | None = None, anchors=None, source: str | None = None):
        super().__init__()
        self.yaml = deepcopy(cfg)
        self.source = source
        ch = self.yaml["ch"] = self.yaml.get("ch", ch)
        if nc and nc != self.yaml["nc"]:
            self.yaml["nc"] = nc
        if anchors:
            self.yaml["anchors"] = round(anchors)
        self.model, self.save, self.layers_info = parse_model(deepcopy(self.yaml), ch=[ch], source=source)
        self.nc = self.yaml["nc"]
        self.names = [str(i) for i in range(self.nc)]
        self.inplace = self.yaml.get("inplace", True)

        m = self.model[-1]
        s = 256  # 2x the largest stride
        m.inplace = self.inplace
        device = m.anchors.device
        with torch.no_grad():
            if device.type == "meta":  # shapes only: eval-mode layers and no-op norms are enough (and fast)
                with meta_fast_norms():
                    self.eval()
                    m.train()
                    outs = self._forward_checked(torch.zeros(1, ch, s, s, device=device))
                    self.train()
            else:  # the same zero-image forward as YOLOv5 (it also updates BatchNorm running statistics)
                outs = self._forward_checked(torch.zeros(1, ch, s, s, device=device))
        m.stride = torch.tensor([s / x.shape[-2] for x in outs], device="cpu")
        if device.type != "meta":
            m.stride = m.stride.to(device)
            check_anchor_order(m)
            m.anchors /= m.stride.view(-1, 1, 1)
            self._initialize_biases()
        else:  # shapes only: the stride stays on the CPU so its values are known
            m.anchors = m.anchors / m.stride.view(-1, 1, 1).to(device)
        self.stride = m.stride
        initialize_weights(self)

    def forward(self, x: torch.Tensor):
        return self._forward_once(x)

    def _forward_once(self, x: torch.Tensor):
        y = []
        for m in self.model:
            x = layer_inputs(m.f, x, y)
            x = m(x)
            y.append(x if m.i in self.save else None)
        return x

    def _forward_checked(self, x: torch.Tensor):
        """A forward pass that names the layer whose shapes do not fit (used once at build time)."""
        y = []
        for m in self.model:
            x = layer_inputs(m.f, x, y)
            try:
                x = m(x)
            except NasError:
                raise
            except (RuntimeError, ValueError, IndexError, TypeError) as e:
                shapes = [tuple(t.shape) for t in x] if isinstance(x, list) else tuple(x.shape)
                msg = str(e).splitlines()[0]
                raise NasError(f"{_where(self.source, m.i, m.type)}: inputs of shape {shapes} do not fit ({msg}); "
                               f"check its 'from' indices and channel arguments") from None
            y.append(x if m.i in self.save else None)
        return x

    def _initialize_biases(self, cf: torch.Tensor | None = None) -> None:
        """Detect bias priors: ~8 objects per 640 image per level, and a 0.6 class prior."""
        m = self.model[-1]
        for mi, s in zip(m.m, m.stride):
            b = mi.bias.view(m.na, -1)
            b.data[:, 4] += math.log(8 / (640 / s) ** 2)
            b.data[:, 5:5 + m.nc] += math.log(0.6 / (m.nc - 0.99999)) if cf is None else torch.log(cf / cf.sum())
            mi.bias = torch.nn.Parameter(b.view(-1), requires_grad=True)

    def _apply(self, fn, recurse=True):
        # move Detect's stride with the model, as YOLOv5 does; drop its cached grids (rebuilt at the next eval
        # forward), which fn may not apply to: .to(memory_format=torch.channels_last) refuses 5-d tensors
        self = super()._apply(fn, recurse)
        m = self.model[-1]
        m.stride = fn(m.stride)
        m.grid = [torch.empty(0) for _ in m.grid]
        m.anchor_grid = [torch.empty(0) for _ in m.anchor_grid]
        self.stride = m.stride
        return self


__all__ = ["DetectionModel", "Detect", "parse_model", "make_divisible", "LayerInfo", "common"]

"""Search spaces: where attention blocks may go in a base YOLOv5 model, validated once, sampled, rendered.

A space YAML names a base model, insertion points ("after layer 17 may come SGE, GE, ... or none"),
replacement points ("layer 9, SPPF, may become FocalModulation") and the hyperparameter choices of each
block. `load_space` validates all of it before any work; `sample` turns an Optuna trial into an
Architecture (plain data); `render` turns an Architecture into a model YAML dict with every `from` and
Detect index remapped. Costs are additive over points (a block never changes the shapes around it), so
`slot_costs` gives exact per-choice deltas from one count of the base and one count per block.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.errors import NasError
from nas.model import BUILTIN, load_cfg, make_divisible, parse_imgsz, read_yaml

NONE = "none"  # the "no block" choice at an insertion point
KEEP = "keep"  # the "original layer" choice at a replacement point
TOP_KEYS = {"base", "nc", "imgsz", "depth_multiple", "width_multiple", "hyperparameters", "insert", "replace",
            "description"}
POINT_KEYS = {"insert": {"after", "name", "blocks", "hyperparameters"},
              "replace": {"layer", "name", "blocks", "hyperparameters"}}


@dataclass(frozen=True)
class Point:
    """One place a block may go: inserted after base layer `layer`, or replacing it."""

    name: str
    kind: str  # "insert" | "replace"
    layer: int
    blocks: tuple[str, ...]  # canonical block names, plus NONE (insert) or KEEP (replace)
    hyperparameters: dict[str, dict[str, list]]  # block -> hyperparameter -> values to try (1 value = fixed)

    @property
    def empty(self) -> str:
        return NONE if self.kind == "insert" else KEEP


@dataclass(frozen=True)
class Space:
    """A validated search space."""

    path: str
    base: str
    base_cfg: dict
    imgsz: tuple[int, int]
    depth_multiple: tuple[float, ...]
    width_multiple: tuple[float, ...]
    points: tuple[Point, ...]
    hash: str
    description: str = ""
    nc: int | None = None  # set when the space file fixes it; otherwise the search uses the dataset's

    @property
    def name(self) -> str:
        return Path(self.path).stem


@dataclass
class Architecture:
    """One candidate: the model multiples and, per point, the block (or none/keep) and its hyperparameters."""

    depth_multiple: float
    width_multiple: float
    choices: dict[str, dict[str, Any]] = field(default_factory=dict)  # point -> {"block": ..., hp: value}

    def short(self) -> dict[str, str]:
        """Point -> 'SGE(groups=8)', 'none' or 'keep', for tables and trial records."""
        out = {}
        for point, choice in self.choices.items():
            hp = ", ".join(f"{k}={v}" for k, v in choice.items() if k != "block")
            out[point] = f"{choice['block']}({hp})" if hp else choice["block"]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"depth_multiple": self.depth_multiple, "width_multiple": self.width_multiple,
                "choices": deepcopy(self.choices)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Architecture:
        return cls(float(d["depth_multiple"]), float(d["width_multiple"]), deepcopy(d["choices"]))


# ----------------------------------------------------------------------------------------------- loading


def load_space(path: str | Path) -> Space:
    """Read and validate a search-space YAML; every problem is a NasError naming the file, point and fix."""
    path = Path(path)
    src = str(path)
    doc = read_yaml(path, "search-space YAML")
    if not isinstance(doc, dict):
        raise NasError(f"{src}: a search space must be a mapping with 'base' and 'insert' and/or 'replace'")
    unknown = sorted(set(doc) - TOP_KEYS)
    if unknown:
        raise NasError(f"{src}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(TOP_KEYS))}")
    if "base" not in doc:
        raise NasError(f"{src}: missing 'base'; name a built-in model ({', '.join(BUILTIN)}) or a model YAML path")
    base = str(doc["base"])
    base_ref: str | dict = base
    if base not in BUILTIN and base.removesuffix(".yaml") not in BUILTIN:
        candidate = path.parent / base
        base_ref = str(candidate) if candidate.exists() else base
    try:
        cfg = load_cfg(base_ref)
    except NasError as e:
        raise NasError(f"{src}: base {base!r} does not load: {e}") from None
    cfg.pop("_source", None)
    if doc.get("nc") is not None:
        nc = doc["nc"]
        if not isinstance(nc, int) or isinstance(nc, bool) or nc < 1:
            raise NasError(f"{src}: nc must be a positive integer, got {nc!r}")
        cfg["nc"] = nc
    try:
        imgsz = parse_imgsz(doc.get("imgsz", 640))
    except NasError as e:
        raise NasError(f"{src}: imgsz: {e}") from None
    gd = _multiples(doc, "depth_multiple", cfg, src)
    gw = _multiples(doc, "width_multiple", cfg, src)

    # the base must build at every multiple; its per-layer shapes decide the channels at each point
    base_costs = _base_layers(cfg, gd, gw, imgsz, src, base)
    n_layers = len(cfg["backbone"]) + len(cfg["head"])
    detect_i = n_layers - 1

    global_hp = doc.get("hyperparameters") or {}
    if not isinstance(global_hp, dict):
        raise NasError(f"{src}: 'hyperparameters' must map block names to {{hyperparameter: [values]}}")
    points: list[Point] = []
    for kind, key in (("insert", "after"), ("replace", "layer")):
        rows = doc.get(kind) or []
        if not isinstance(rows, list):
            raise NasError(f"{src}: '{kind}' must be a list of points, each with '{key}' and 'blocks'")
        for j, row in enumerate(rows):
            points.append(_point(row, kind, key, j, src, global_hp, detect_i, cfg, base_costs, gw))
    if not points and len(gd) * len(gw) == 1:
        raise NasError(f"{src}: the space has no 'insert' or 'replace' points and no multiples to choose; "
                       f"add at least one point")
    names = [p.name for p in points]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise NasError(f"{src}: duplicate point name(s) {', '.join(dup)}; give each point its own 'name'")
    for kind in ("insert", "replace"):
        layers = [p.layer for p in points if p.kind == kind]
        dup_l = sorted({x for x in layers if layers.count(x) > 1})
        if dup_l:
            verb = "after" if kind == "insert" else "replacing"
            raise NasError(f"{src}: duplicate {kind} points {verb} layer {dup_l[0]}; merge them into one point "
                           f"with all the blocks")
    canonical = {"base": cfg, "imgsz": list(imgsz), "depth_multiple": list(gd), "width_multiple": list(gw),
                 "points": [_point_dict(p) for p in points]}
    digest = hashlib.sha256(json.dumps(canonical, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Space(src, base, cfg, imgsz, gd, gw, tuple(points), digest, str(doc.get("description", "")),
                 doc.get("nc"))


def _multiples(doc: dict, key: str, cfg: dict, src: str) -> tuple[float, ...]:
    v = doc.get(key)
    if v is None:
        return (float(cfg[key]),)
    values = v if isinstance(v, list) else [v]
    if not values or any(isinstance(x, bool) or not isinstance(x, (int, float)) or x <= 0 for x in values):
        raise NasError(f"{src}: {key} must be a positive number or a list of them, got {v!r}")
    if len(set(values)) != len(values):
        raise NasError(f"{src}: {key} lists a value twice: {v!r}")
    return tuple(float(x) for x in values)


def _base_layers(cfg: dict, gd: tuple[float, ...], gw: tuple[float, ...], imgsz, src: str, base: str) -> dict:
    """(depth, width) -> per-layer costs of the base model at imgsz."""
    from nas.cost import count

    out = {}
    for d, w in itertools.product(gd, gw):
        c = dict(cfg, depth_multiple=d, width_multiple=w, _source=f"base {base}")
        try:
            out[(d, w)] = count(c, imgsz, per_layer=True)
        except NasError as e:
            raise NasError(f"{src}: base {base!r} does not build at depth_multiple={d}, width_multiple={w}: "
                           f"{e}") from None
    return out


def _point(row: Any, kind: str, key: str, j: int, src: str, global_hp: dict, detect_i: int, cfg: dict,
           base_costs: dict, gw: tuple[float, ...]) -> Point:
    import blocks

    label = f"{kind} point {j + 1}"
    if not isinstance(row, dict):
        raise NasError(f"{src}: {label} must be a mapping with '{key}' and 'blocks', got {row!r}")
    unknown = sorted(set(row) - POINT_KEYS[kind])
    if unknown:
        raise NasError(f"{src}: {label}: unknown key(s) {', '.join(unknown)}; allowed: "
                       f"{', '.join(sorted(POINT_KEYS[kind]))}")
    layer = row.get(key)
    name = str(row.get("name") or (f"after{layer}" if kind == "insert" else f"layer{layer}"))
    where = f"{src}: point {name!r}"
    if not isinstance(layer, int) or isinstance(layer, bool):
        raise NasError(f"{where}: '{key}' must be a base layer index (as in the YOLOv5 YAML comments), got {layer!r}")
    if layer < 0 or layer > detect_i:
        raise NasError(f"{where}: layer {layer} is out of range; the base has layers 0..{detect_i}")
    if layer >= detect_i or (kind == "replace" and layer == detect_i):
        raise NasError(f"{where}: layer {layer} is Detect; points must come before Detect (use the P3/P4/P5 "
                       f"outputs, e.g. 17, 20, 23 in YOLOv5)")
    names = row.get("blocks")
    if not isinstance(names, list) or not names:
        raise NasError(f"{where}: 'blocks' must be a non-empty list, e.g. [{NONE if kind == 'insert' else KEEP}, "
                       f"SGE, GE]")
    empty = NONE if kind == "insert" else KEEP
    canon: list[str] = []
    for b in names:
        if str(b).lower() in (NONE, KEEP) or b is None:
            c = empty
        else:
            try:
                c = blocks.resolve(str(b)).name
            except blocks.BlockError as e:
                raise NasError(f"{where}: {e}") from None
        if c in canon:
            raise NasError(f"{where}: block {b!r} is listed twice")
        canon.append(c)
    if len(canon) == 1 and canon[0] == empty:
        raise NasError(f"{where}: the only choice is {empty!r}; add a block or remove the point")

    rows = cfg["backbone"] + cfg["head"]
    if kind == "replace":
        f = rows[layer][0]
        if not isinstance(f, int):
            raise NasError(f"{where}: layer {layer} ({rows[layer][2]}) reads several layers; only a layer with "
                           f"one input can be replaced by a block")
    local_hp = row.get("hyperparameters") or {}
    if not isinstance(local_hp, dict) or not isinstance(global_hp, dict):
        raise NasError(f"{where}: 'hyperparameters' must map block names to {{hyperparameter: [values]}}")
    hp_all: dict[str, dict[str, list]] = {}
    for b in canon:
        if b == empty:
            continue
        spec = blocks.resolve(b)
        merged: dict[str, list] = {}
        for scope in (global_hp, local_hp):
            for bname, table in scope.items():
                try:
                    if blocks.resolve(str(bname)).name != b:
                        continue
                except blocks.BlockError as e:
                    raise NasError(f"{where}: hyperparameters: {e}") from None
                if not isinstance(table, dict):
                    raise NasError(f"{where}: hyperparameters of {bname} must be a mapping {{name: [values]}}")
                for hname, values in table.items():
                    if hname not in spec.params:
                        raise NasError(f"{where}: {b} has no hyperparameter {hname!r}; it takes "
                                       f"{', '.join(spec.params)}")
                    vals = values if isinstance(values, list) else [values]
                    if not vals:
                        raise NasError(f"{where}: {b}.{hname} has an empty list of values")
                    if len({json.dumps(v) for v in vals}) != len(vals):
                        raise NasError(f"{where}: {b}.{hname} lists a value twice: {vals!r}")
                    merged[hname] = list(vals)
        hp = {h: merged.get(h, [spec.defaults[h]]) for h in spec.params}
        _check_block_fits(where, kind, layer, b, spec, hp, base_costs, rows)
        hp_all[b] = hp
    return Point(name, kind, layer, tuple(canon), hp_all)


def _check_block_fits(where: str, kind: str, layer: int, b: str, spec, hp: dict[str, list], base_costs: dict,
                      rows: list) -> None:
    """Every value of every hyperparameter must be valid at this point's channel count, at every width."""
    import blocks

    for (_d, _w), cost in base_costs.items():
        out = cost.layers[layer].out_shape
        if kind == "insert":
            c1 = out[1]
        else:
            f = rows[layer][0]
            src = layer + f if f < 0 else f
            inp = cost.layers[src].out_shape if layer > 0 else (1, 3)
            c1 = inp[1]
            if not spec.changes_channels and c1 != out[1]:
                raise NasError(f"{where}: {b} keeps the channel count but layer {layer} ({rows[layer][2]}) maps "
                               f"{c1} to {out[1]} channels; replace a layer whose input and output widths match, "
                               f"or insert after it")
            if layer > 0 and tuple(inp[2:]) != tuple(out[2:]):
                raise NasError(f"{where}: layer {layer} ({rows[layer][2]}) changes the feature size "
                               f"{inp[2]}x{inp[3]} -> {out[2]}x{out[3]}; a block keeps it, so it cannot replace "
                               f"this layer")
        for hname, values in hp.items():
            for v in values:
                trial = {h: vals[0] for h, vals in hp.items()}
                trial[hname] = v
                try:
                    blocks.validate(b, c1, trial)
                except blocks.BlockError as e:
                    raise NasError(f"{where}: {e} (the point has {c1} channels)") from None


def _point_dict(p: Point) -> dict:
    return {"name": p.name, "kind": p.kind, "layer": p.layer, "blocks": list(p.blocks),
            "hyperparameters": p.hyperparameters}


# ------------------------------------------------------------------------------------- sampling / params


def _param(point: Point, block: str, hname: str) -> str:
    return f"{point.name}.{block}.{hname}"


def sample(space: Space, trial: Any) -> Architecture:
    """Sample an Architecture with categorical suggestions only; a hyperparameter is suggested only when its
    block is chosen, under a stable name `<point>.<block>.<hyperparameter>`."""
    gd = space.depth_multiple[0] if len(space.depth_multiple) == 1 else \
        float(trial.suggest_categorical("depth_multiple", list(space.depth_multiple)))
    gw = space.width_multiple[0] if len(space.width_multiple) == 1 else \
        float(trial.suggest_categorical("width_multiple", list(space.width_multiple)))
    choices: dict[str, dict[str, Any]] = {}
    for p in space.points:
        block = trial.suggest_categorical(f"{p.name}.block", list(p.blocks))
        choice: dict[str, Any] = {"block": block}
        for hname, values in p.hyperparameters.get(block, {}).items():
            choice[hname] = values[0] if len(values) == 1 else trial.suggest_categorical(
                _param(p, block, hname), list(values))
        choices[p.name] = choice
    return Architecture(gd, gw, choices)


def trial_params(space: Space, arch: Architecture) -> dict[str, Any]:
    """The Optuna params that make `sample` return arch (for enqueue_trial)."""
    params: dict[str, Any] = {}
    if len(space.depth_multiple) > 1:
        params["depth_multiple"] = arch.depth_multiple
    if len(space.width_multiple) > 1:
        params["width_multiple"] = arch.width_multiple
    for p in space.points:
        choice = arch.choices[p.name]
        params[f"{p.name}.block"] = choice["block"]
        for hname, values in p.hyperparameters.get(choice["block"], {}).items():
            if len(values) > 1:
                params[_param(p, choice["block"], hname)] = choice[hname]
    return params


def baseline(space: Space) -> Architecture:
    """The unmodified base model: no block anywhere, the base's own multiples when they are choices."""
    gd = float(space.base_cfg["depth_multiple"])
    gw = float(space.base_cfg["width_multiple"])
    gd = gd if gd in space.depth_multiple else space.depth_multiple[0]
    gw = gw if gw in space.width_multiple else space.width_multiple[0]
    return Architecture(gd, gw, {p.name: {"block": p.empty} for p in space.points})


def n_architectures(space: Space) -> int:
    """How many distinct architectures the space holds."""
    total = len(space.depth_multiple) * len(space.width_multiple)
    for p in space.points:
        total *= sum(math.prod(len(v) for v in p.hyperparameters.get(b, {}).values()) for b in p.blocks)
    return total


def block_configs(point: Point, block: str) -> list[dict[str, Any]]:
    """Every hyperparameter combination of one block at one point."""
    hp = point.hyperparameters.get(block, {})
    keys = list(hp)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(hp[k] for k in keys))]


# ------------------------------------------------------------------------------------------- rendering


def _yaml_channels(c1: int, gw: float) -> int:
    """A channel argument that width-scales (make_divisible(c * gw, 8)) back to exactly c1."""
    guess = round(c1 / gw)
    for c in sorted(range(max(1, guess - 16), guess + 17), key=lambda c: abs(c - guess)):
        if make_divisible(c * gw, 8) == c1:
            return c
    return guess


def render(space: Space, arch: Architecture) -> dict:
    """The model YAML dict of an architecture: blocks inserted/replaced, every `from` and Detect index remapped."""
    import blocks

    cfg = deepcopy(space.base_cfg)
    cfg["depth_multiple"] = arch.depth_multiple
    cfg["width_multiple"] = arch.width_multiple
    rows = cfg["backbone"] + cfg["head"]
    n_backbone = len(cfg["backbone"])
    shapes = _channels(space, arch)
    inserted: dict[int, list] = {}
    for p in space.points:
        choice = arch.choices[p.name]
        block = choice["block"]
        if block == p.empty:
            continue
        spec = blocks.resolve(block)
        hp_values = [choice.get(h, spec.defaults[h]) for h in spec.params]
        if p.kind == "insert":
            c = _yaml_channels(shapes[p.layer], arch.width_multiple)
            inserted[p.layer] = [-1, 1, block, [c, *hp_values]]
        else:
            f, _n, _m, args = rows[p.layer]
            if spec.changes_channels:
                c = args[0]
            else:
                c = _yaml_channels(shapes[p.layer], arch.width_multiple)
            rows[p.layer] = [f, 1, block, [c, *hp_values]]

    # old index -> new index, and where consumers of an old layer must now read from
    new_index, reads_from = {}, {}
    shift = 0
    for i in range(len(rows)):
        new_index[i] = i + shift
        if i in inserted:
            shift += 1
        reads_from[i] = new_index[i] + (1 if i in inserted else 0)
    out_rows = []
    for i, row in enumerate(rows):
        f, n, m, args = row
        new_f = _remap(f, i, reads_from)
        out_rows.append([new_f, n, m, deepcopy(args)])
        if i in inserted:
            out_rows.append(inserted[i])
    n_backbone_new = n_backbone + sum(1 for k in inserted if k < n_backbone)
    cfg["backbone"] = out_rows[:n_backbone_new]
    cfg["head"] = out_rows[n_backbone_new:]
    return cfg


def _remap(f: int | list[int], i: int, reads_from: dict[int, int]) -> int | list[int]:
    def one(j: int) -> int:
        if j == -1:
            return -1  # the previous row, which is the inserted block when one follows layer i-1
        old = i + j if j < 0 else j
        return reads_from[old]

    return [one(j) for j in f] if isinstance(f, list) else one(f)


def _channels(space: Space, arch: Architecture) -> dict[int, int]:
    """Output channels of every base layer at the architecture's multiples (shape arithmetic, no build)."""
    cfg = dict(space.base_cfg, depth_multiple=arch.depth_multiple, width_multiple=arch.width_multiple)
    return _channels_of(json.dumps(cfg, sort_keys=True, default=str))


_CHANNEL_CACHE: dict[str, dict[int, int]] = {}


def _channels_of(key: str) -> dict[int, int]:
    if key not in _CHANNEL_CACHE:
        from nas.model import build_model

        m = build_model(json.loads(key), device="meta")
        _CHANNEL_CACHE[key] = {info.i: info.c2 for info in m.layers_info}
    return _CHANNEL_CACHE[key]


def model_hash(cfg: dict) -> str:
    """A stable identifier of a rendered model: sha256 of its canonical JSON (16 hex digits)."""
    clean = {k: v for k, v in cfg.items() if not k.startswith("_")}
    return hashlib.sha256(json.dumps(clean, sort_keys=True, default=str).encode()).hexdigest()[:16]


def to_yaml(cfg: dict) -> str:
    """A model dict as YOLOv5-style YAML text: scalars first, then one flow-style row per layer."""
    import yaml

    lines = []
    for key in ("nc", "depth_multiple", "width_multiple"):
        lines.append(f"{key}: {cfg[key]}")
    lines.append("anchors:")
    anchors = cfg["anchors"]
    if isinstance(anchors, list):
        lines += [f"  - {json.dumps(a)}" for a in anchors]
    else:
        lines[-1] = f"anchors: {anchors}"
    for extra in sorted(k for k in cfg if k not in ("nc", "depth_multiple", "width_multiple", "anchors",
                                                    "backbone", "head") and not k.startswith("_")):
        lines.append(yaml.safe_dump({extra: cfg[extra]}, default_flow_style=True).strip())
    i = 0
    for section in ("backbone", "head"):
        lines.append("")
        lines.append(f"{section}:")
        for row in cfg[section]:
            f, n, m, args = row
            text = yaml.safe_dump([f, n, m, args], default_flow_style=True, width=10_000).strip()
            lines.append(f"  - {text}  # {i}")
            i += 1
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- costing


@dataclass
class SlotCost:
    """What one block choice (with one hyperparameter setting) adds at one point."""

    point: str
    block: str
    hyperparameters: dict[str, Any]
    params: int
    flops: float
    shape: tuple[int, int, int]  # C, H, W of the feature map at the point


def slot_costs(space: Space, gd: float, gw: float) -> list[SlotCost]:
    """Exact params/FLOPs deltas of every choice at every point, at the given multiples and space.imgsz."""
    import torch

    import blocks
    from nas.cost import count, module_flops

    cfg = dict(space.base_cfg, depth_multiple=gd, width_multiple=gw)
    base = count(cfg, space.imgsz, per_layer=True)
    rows = space.base_cfg["backbone"] + space.base_cfg["head"]
    out = []
    for p in space.points:
        layer = base.layers[p.layer]
        if p.kind == "insert":
            shape = layer.out_shape
            c2 = None
            minus_params, minus_flops = 0, 0.0
        else:
            f = rows[p.layer][0]
            src = p.layer + f if f < 0 else f
            shape = base.layers[src].out_shape
            c2 = layer.out_shape[1]
            minus_params, minus_flops = layer.params, layer.flops
        for b in p.blocks:
            if b == p.empty:
                out.append(SlotCost(p.name, b, {}, 0, 0.0, tuple(shape[1:])))
                continue
            for hp in block_configs(p, b):
                with torch.device("meta"):
                    module = blocks.build(b, shape[1], c2=c2, **hp)
                params = sum(t.numel() for t in module.parameters())
                flops = module_flops(module, tuple(shape))
                out.append(SlotCost(p.name, b, hp, params - minus_params, flops - minus_flops, tuple(shape[1:])))
    return out


_COST_TABLES: dict[tuple[str, float, float], tuple[int, float, list[SlotCost]]] = {}


def cost_table(space: Space, gd: float, gw: float) -> tuple[int, float, list[SlotCost]]:
    """(base params, base FLOPs, slot costs) at the given multiples, computed once per space and multiples."""
    from nas.cost import count

    key = (space.hash, gd, gw)
    if key not in _COST_TABLES:
        base = count(dict(space.base_cfg, depth_multiple=gd, width_multiple=gw), space.imgsz)
        _COST_TABLES[key] = (base.params, base.flops, slot_costs(space, gd, gw))
    return _COST_TABLES[key]


def predict_cost(space: Space, arch: Architecture) -> tuple[int, float]:
    """(params, FLOPs) of an architecture: the base's cost plus each point's exact delta."""
    params, flops, slots = cost_table(space, arch.depth_multiple, arch.width_multiple)
    for p in space.points:
        choice = arch.choices[p.name]
        hp = {k: v for k, v in choice.items() if k != "block"}
        match = [s for s in slots if s.point == p.name and s.block == choice["block"] and s.hyperparameters == hp]
        if not match:
            raise NasError(f"{space.path}: point {p.name!r}: {arch.short()[p.name]} is not a choice of this space")
        params += match[0].params
        flops += match[0].flops
    return params, flops

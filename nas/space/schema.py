"""Search-space schema: where attention blocks may go in a base YOLOv5 model, validated once by `load_space`.

A space YAML names a base model, insertion points ("after layer 17 may come SGE, GE, ... or none"),
replacement points ("layer 9, SPPF, may become FocalModulation") and the hyperparameter choices of each
block. Every problem is a NasError naming the file, the point and the fix. Shipped spaces (neck, backbone,
sppf, full) are package data, found by name with `resolve_space_path`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blocks
from nas.errors import NasError
from nas.model import BUILTIN, at_multiples, load_cfg, parse_imgsz, read_yaml, source_index

NONE = "none"  # the "no block" choice at an insertion point
KEEP = "keep"  # the "original layer" choice at a replacement point
TOP_KEYS = {"base", "nc", "imgsz", "depth_multiple", "width_multiple", "hyperparameters", "insert", "replace",
            "description"}
POINT_KEYS = {"insert": {"after", "name", "blocks", "hyperparameters"},
              "replace": {"layer", "name", "blocks", "hyperparameters"}}
SHIPPED = Path(__file__).resolve().parent.parent / "search_spaces"  # the spaces shipped with the package


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



def shipped_spaces() -> list[str]:
    """Names of the shipped spaces (neck, backbone, sppf, full)."""
    return sorted(p.stem for p in SHIPPED.glob("*.yaml"))


def resolve_space_path(space: str | Path) -> str:
    """A space path as given when it exists, else the shipped space of that name (`neck` or `neck.yaml`)."""
    text = str(space)
    if Path(text).exists():
        return text
    name = Path(text).name
    shipped = SHIPPED / f"{name.removesuffix('.yaml')}.yaml"
    if shipped.exists() and ("/" not in text or text == f"search_spaces/{name}"):
        return str(shipped)
    return text


def load_space(path: str | Path) -> Space:
    """Read and validate a search-space YAML (a path or a shipped name); every problem is a NasError naming
    the file, point and fix."""
    path = Path(resolve_space_path(path))
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
    out = {}
    for d, w in itertools.product(gd, gw):
        try:
            out[(d, w)] = at_multiples(dict(cfg, _source=f"base {base}"), d, w, imgsz, per_layer=True)
        except NasError as e:
            raise NasError(f"{src}: base {base!r} does not build at depth_multiple={d}, width_multiple={w}: "
                           f"{e}") from None
    return out


def _point(row: Any, kind: str, key: str, j: int, src: str, global_hp: dict, detect_i: int, cfg: dict,
           base_costs: dict, gw: tuple[float, ...]) -> Point:
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
    for (_d, _w), cost in base_costs.items():
        out = cost.layers[layer].out_shape
        if kind == "insert":
            c1 = out[1]
        else:
            inp = cost.layers[source_index(rows[layer][0], layer)].out_shape if layer > 0 else (1, 3)
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


"""Rendering an Architecture to a model YAML dict: blocks inserted or replaced, every `from` and Detect index
remapped; the rendered model's hash (the dedup key) and its YOLOv5-style YAML text."""

from __future__ import annotations

import hashlib
import json
from copy import deepcopy

import yaml

import blocks
from nas.model import build_model, make_divisible, source_index
from nas.space.schema import Architecture, Space


def _yaml_channels(c1: int, gw: float) -> int:
    """A channel argument that width-scales (make_divisible(c * gw, 8)) back to exactly c1."""
    guess = round(c1 / gw)
    for c in sorted(range(max(1, guess - 16), guess + 17), key=lambda c: abs(c - guess)):
        if make_divisible(c * gw, 8) == c1:
            return c
    return guess


def render(space: Space, arch: Architecture) -> dict:
    """The model YAML dict of an architecture: blocks inserted/replaced, every `from` and Detect index remapped."""
    return render_with_map(space, arch)[0]


def render_with_map(space: Space, arch: Architecture) -> tuple[dict, dict[int, int]]:
    """render(), plus the old -> new index of every base layer kept as it was (replaced layers are left out):
    the map nas.weights.transfer uses to put a base checkpoint's tensors into the candidate."""
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
    replaced = {p.layer for p in space.points if p.kind != "insert" and arch.choices[p.name]["block"] != p.empty}
    return cfg, {i: j for i, j in new_index.items() if i not in replaced}


def _remap(f: int | list[int], i: int, reads_from: dict[int, int]) -> int | list[int]:
    def one(j: int) -> int:
        if j == -1:
            return -1  # the previous row, which is the inserted block when one follows layer i-1
        return reads_from[source_index(j, i)]

    return [one(j) for j in f] if isinstance(f, list) else one(f)


def _channels(space: Space, arch: Architecture) -> dict[int, int]:
    """Output channels of every base layer at the architecture's multiples (shape arithmetic, no build)."""
    cfg = dict(space.base_cfg, depth_multiple=arch.depth_multiple, width_multiple=arch.width_multiple)
    return _channels_of(json.dumps(cfg, sort_keys=True, default=str))


_CHANNEL_CACHE: dict[str, dict[int, int]] = {}


def _channels_of(key: str) -> dict[int, int]:
    if key not in _CHANNEL_CACHE:
        m = build_model(json.loads(key), device="meta")
        _CHANNEL_CACHE[key] = {info.i: info.c2 for info in m.layers_info}
    return _CHANNEL_CACHE[key]


def model_hash(cfg: dict) -> str:
    """A stable identifier of a rendered model: sha256 of its canonical JSON (16 hex digits)."""
    clean = {k: v for k, v in cfg.items() if not k.startswith("_")}
    return hashlib.sha256(json.dumps(clean, sort_keys=True, default=str).encode()).hexdigest()[:16]


def to_yaml(cfg: dict) -> str:
    """A model dict as YOLOv5-style YAML text: scalars first, then one flow-style row per layer."""
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


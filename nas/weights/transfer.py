"""Transfer a base model's weights into an edited model so that every surviving base layer lands in the layer
that now plays its role: by the render's old -> new index map, or by aligning the two YAMLs' layer lists.

YOLOv5's train.py matches tensors by name and shape (`intersect_dicts`), so once a block is inserted every later
layer is dropped or, where name and shape happen to agree, loaded into a layer with another role.
`yolov5_rule` reimplements that rule so the difference can be measured.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import torch

from nas.errors import NasError
from nas.model import source_index

# state-dict entries that are buffers, not parameters (YOLOv5 layers and BatchNorm)
BUFFER_NAMES = ("running_mean", "running_var", "num_batches_tracked", "anchors", "anchor_grid")
_KEY = re.compile(r"^model\.(\d+)\.(.+)$")


def is_parameter(key: str) -> bool:
    """Whether a state-dict key of a YOLOv5 model names a parameter (not a BatchNorm statistic or anchors)."""
    return key.rsplit(".", 1)[-1] not in BUFFER_NAMES


def layer_of(key: str) -> tuple[int, str] | None:
    """`model.17.cv1.conv.weight` -> (17, 'cv1.conv.weight'); None for a key outside the layer list."""
    m = _KEY.match(key)
    return (int(m.group(1)), m.group(2)) if m else None


# ---------------------------------------------------------------------------------------------------------------
# Layer alignment


@dataclass(frozen=True)
class _Row:
    i: int
    sources: tuple[int, ...]  # absolute indices read (-1: the input image)
    module: str  # canonical: nn.Upsample, C3, SGE (aliases resolved), ...
    args: str  # canonical JSON of the YAML arguments
    n: int
    sig: tuple  # what two rows must share to play the same role, before their sources are checked


def _module_name(m: Any) -> str:
    short = str(m).removeprefix("torch.").removeprefix("models.common.").removeprefix("models.yolo.")
    if short.startswith("nn."):
        return short
    import blocks

    try:
        return blocks.resolve(short).name
    except blocks.BlockError:
        return short


def _canon_arg(a: Any) -> Any:
    if isinstance(a, str):
        try:
            return ast.literal_eval(a)  # YOLOv5 evaluates 'None', '2' ...; 'nc', 'anchors', 'nearest' stay
        except (ValueError, SyntaxError):
            return a
    return a


def _rows(cfg: dict, what: str) -> list[_Row]:
    rows = list(cfg.get("backbone") or []) + list(cfg.get("head") or [])
    if not rows:
        raise NasError(f"{what}: no layers; a YOLOv5 model YAML needs 'backbone' and 'head' rows")
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, (list, tuple)) or len(row) != 4:
            raise NasError(f"{what}: layer {i}: each row must be [from, number, module, args], got {row!r}")
        f, n, m, args = row
        fs = f if isinstance(f, list) else [f]
        if not fs or not all(isinstance(j, int) and not isinstance(j, bool) for j in fs):
            raise NasError(f"{what}: layer {i}: 'from' must be an integer or a list of integers, got {f!r}")
        sources = tuple(source_index(j, i) for j in fs)
        module = _module_name(m)
        # Detect's arguments are nc and anchors: nc may differ (class rows) and anchors are compared apart
        a = "" if module == "Detect" else json.dumps([_canon_arg(x) for x in (args or [])], default=str)
        prev = tuple(s == i - 1 for s in sources)
        out.append(_Row(i, sources, module, a, n, (module, n, a, prev)))
    return out


@dataclass
class Alignment:
    """Which base layer plays which role in the edited model."""

    matched: dict[int, int]  # base layer -> edited layer: same module, arguments and (mapped) sources
    replaced: dict[int, int]  # base layer -> the edited layer in its place (another module, arguments or wiring)
    removed: list[int]  # base layers with nothing in their place
    new: list[int]  # edited layers with no base counterpart (inserted blocks)
    how: str  # "render map" | "alignment"


def _insertable(row: _Row) -> bool:
    """A channel-keeping attention block reading one layer: what `nas` and the blog posts insert."""
    import blocks

    spec = blocks.REGISTRY.get(row.module)
    return spec is not None and not spec.changes_channels and len(row.sources) == 1


def _fill_gaps(b: list[_Row], e: list[_Row], matched: dict[int, int]) -> tuple[dict[int, int], list[int], list[int]]:
    """Between consecutive matched pairs, pair the leftover base rows with leftover edited rows (replacements):
    other modules first, inserted-looking blocks last; what is left over is removed (base) or new (edited)."""
    bounds = [(-1, -1), *sorted(matched.items()), (len(b), len(e))]
    replaced: dict[int, int] = {}
    removed: list[int] = []
    new: list[int] = []
    for (i0, j0), (i1, j1) in zip(bounds, bounds[1:]):
        gb, ge = list(range(i0 + 1, i1)), list(range(j0 + 1, j1))
        order = [j for j in ge if not _insertable(e[j])] + [j for j in ge if _insertable(e[j])]
        chosen = sorted(order[:len(gb)])
        replaced.update(zip(gb, chosen))
        removed += gb[len(chosen):]
        new += [j for j in ge if j not in chosen]
    return replaced, removed, new


def _origin(s: int, e: list[_Row], new: set[int]) -> int:
    """The edited layer an edited source stands for: inserted single-input layers are looked through."""
    while s >= 0 and s in new and len(e[s].sources) == 1:
        s = e[s].sources[0]
    return s


def _first_inconsistent(b: list[_Row], e: list[_Row], matched: dict[int, int], replaced: dict[int, int],
                        new: list[int]) -> tuple[int, int] | None:
    role = {**matched, **replaced, -1: -1}
    new_set = set(new)
    for i, j in sorted(matched.items()):
        for sb, se in zip(b[i].sources, e[j].sources):
            if role.get(sb) is None or role[sb] != _origin(se, e, new_set):
                return i, j
    return None


def _lcs(b: list[_Row], e: list[_Row], forbidden: set[tuple[int, int]]) -> dict[int, int]:
    """Longest common subsequence of rows by signature (a Needleman-Wunsch DP with no mismatch score)."""
    nb, ne = len(b), len(e)
    score = [[0] * (ne + 1) for _ in range(nb + 1)]

    def same(i: int, j: int) -> bool:
        return b[i].sig == e[j].sig and (i, j) not in forbidden

    for i in range(nb - 1, -1, -1):
        for j in range(ne - 1, -1, -1):
            score[i][j] = score[i + 1][j + 1] + 1 if same(i, j) else max(score[i + 1][j], score[i][j + 1])
    pairs, i, j = {}, 0, 0
    while i < nb and j < ne:
        if same(i, j) and score[i][j] == score[i + 1][j + 1] + 1:
            pairs[i] = j
            i, j = i + 1, j + 1
        elif score[i + 1][j] >= score[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


def _source(cfg: dict, default: str) -> str:
    return str(cfg.get("_source") or default)


def alignment(base_cfg: dict, edited_cfg: dict) -> Alignment:
    """Align an edited model YAML to its base: rows agree by module, number, arguments and which sources are
    the previous layer (a DP over rows), then every matched row's `from` must point, through the map, at the
    layers its base row reads (inserted single-input blocks are looked through); a pair that does not is
    dropped and the DP rerun. The multiples are not compared: both models scale the same YAML arguments.
    NasError when fewer than half the base's layers align (not an edit of this base)."""
    b = _rows(base_cfg, _source(base_cfg, "base model YAML"))
    e = _rows(edited_cfg, _source(edited_cfg, "edited model YAML"))
    forbidden: set[tuple[int, int]] = set()
    while True:
        matched = _lcs(b, e, forbidden)
        replaced, removed, new = _fill_gaps(b, e, matched)
        bad = _first_inconsistent(b, e, matched, replaced, new)
        if bad is None:
            break
        forbidden.add(bad)
    if 2 * len(matched) < len(b):
        first = next(r for r in b if r.i not in matched)
        raise NasError(f"{_source(edited_cfg, 'edited model YAML')}: only {len(matched)} of the base's {len(b)} "
                       f"layers align with it (first unmatched base layer: {first.i} {first.module} {first.args}); "
                       f"it is not an edit of {_source(base_cfg, 'the base model')}, so its weights cannot be "
                       f"transferred")
    return Alignment(matched, replaced, removed, new, "alignment")


def align_layers(base_cfg: dict, edited_cfg: dict) -> dict[int, int]:
    """Base layer index -> edited layer index for every base layer that survives unchanged in the edited YAML."""
    return alignment(base_cfg, edited_cfg).matched


def alignment_from_map(base_cfg: dict, edited_cfg: dict, index_map: dict[int, int]) -> Alignment:
    """An Alignment from a known old -> new map (nas.space.render_with_map's), checked against both YAMLs."""
    b = _rows(base_cfg, _source(base_cfg, "base model YAML"))
    e = _rows(edited_cfg, _source(edited_cfg, "edited model YAML"))
    pairs = sorted((int(i), int(j)) for i, j in index_map.items())
    last = -1
    for i, j in pairs:
        if not (0 <= i < len(b) and 0 <= j < len(e)) or j <= last:
            raise NasError(f"index map {i} -> {j} is out of range or out of order (base has {len(b)} layers, "
                           f"the edited model {len(e)})")
        if b[i].module != e[j].module:
            raise NasError(f"index map {i} -> {j}: base layer {i} is {b[i].module} but edited layer {j} is "
                           f"{e[j].module}; the map does not belong to these models")
        last = j
    matched = dict(pairs)
    replaced, removed, new = _fill_gaps(b, e, matched)
    return Alignment(matched, replaced, removed, new, "render map")


# ---------------------------------------------------------------------------------------------------------------
# Transfer


@dataclass
class TransferReport:
    """What `transfer` copied, what is new, replaced or removed, and what could not transfer and why."""

    base_params: int  # parameter elements in the base state dict (BatchNorm statistics and anchors excluded)
    base_tensors: int
    transferred_params: int
    transferred_tensors: int  # whole tensors copied, plus Detect tensors whose box and objectness rows were
    layer_map: dict[int, int]  # base layer -> edited layer, every matched layer
    how: str  # "render map" | "alignment"
    new: list[dict] = field(default_factory=list)  # {index, module, params}
    replaced: list[dict] = field(default_factory=list)  # {base_index, base_module, base_params, index, module, params}
    removed: list[dict] = field(default_factory=list)  # {base_index, base_module, base_params}
    skipped: list[dict] = field(default_factory=list)  # {key, to, params, reason, detail}
    unfilled: list[str] = field(default_factory=list)  # edited keys of matched layers with no base tensor
    anchors: str = ""  # where the edited model's anchors came from
    base_nc: int | None = None
    nc: int | None = None

    @property
    def share(self) -> float:
        """Transferred parameters / the base's parameters."""
        return self.transferred_params / self.base_params if self.base_params else 0.0

    def line(self, base_name: str) -> str:
        """`transferred 100.0% of yolov5n.pt's parameters (348 tensors) · new: SGE at 18 (16 params) · skipped:
        none`; the percentage is rounded down, so 100.0% means every parameter."""
        pct = math.floor(self.share * 1000) / 10
        parts = [f"transferred {pct:.1f}% of {base_name}'s parameters ({self.transferred_tensors} tensors)"]
        parts.append("new: " + (", ".join(f"{d['module']} at {d['index']} ({d['params']:,} params)"
                                          for d in self.new) or "none"))
        if self.replaced:
            parts.append("replaced: " + ", ".join(
                f"{d['base_module']} at {d['base_index']} by {d['module']} at {d['index']} ({d['params']:,} params)"
                for d in self.replaced))
        if self.removed:
            parts.append("removed: " + ", ".join(f"{d['base_module']} at {d['base_index']}" for d in self.removed))
        reasons: dict[str, list[int]] = {}
        for d in self.skipped:
            r = reasons.setdefault(d["reason"], [0, 0])
            r[0] += 1
            r[1] += d["params"]
        parts.append("skipped: " + (", ".join(f"{r} ({n} tensors, {p:,} params)" for r, (n, p) in reasons.items())
                                    or "none"))
        return " · ".join(parts)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["share"] = self.share
        d["layer_map"] = {str(k): v for k, v in self.layer_map.items()}
        return d

    def to_json(self) -> str:
        """One JSON document (what `nas transfer --json` prints)."""
        return json.dumps(self.to_dict(), sort_keys=True)


def _by_layer(state: dict[str, torch.Tensor]) -> tuple[dict[int, dict[str, torch.Tensor]], list[str]]:
    layers: dict[int, dict[str, torch.Tensor]] = {}
    other = []
    for k, v in state.items():
        where = layer_of(k)
        if where is None:
            other.append(k)
        else:
            layers.setdefault(where[0], {})[where[1]] = v
    return layers, other


def _numel(tensors: dict[str, torch.Tensor]) -> int:
    return sum(v.numel() for k, v in tensors.items() if is_parameter(k))


def _base_nc(base_state: dict, base_cfg: dict, detect_i: int) -> int:
    bias = base_state.get(f"model.{detect_i}.m.0.bias")
    anchors = base_state.get(f"model.{detect_i}.anchors")
    if bias is not None and anchors is not None and anchors.dim() == 3 and bias.numel() % anchors.shape[1] == 0:
        return bias.numel() // anchors.shape[1] - 5
    return int(base_cfg["nc"])


def transfer(base_state: dict[str, torch.Tensor], base_cfg: dict, model: torch.nn.Module,
             index_map: dict[int, int] | None = None, base_nc: int | None = None) -> TransferReport:
    """Copy every tensor of every base layer that survives in `model` (a nas DetectionModel, changed in place)
    into the layer that now plays its role: `model.<old>.rest` -> `model.<new>.rest`, shape-checked.

    `index_map` (nas.space.render_with_map's) skips the alignment. New and replaced layers keep their init.
    A tensor whose shape differs is skipped ("width differs"); one the edited layer lacks is skipped ("depth
    differs"). When nc differs, Detect's box and objectness rows (5 per anchor) are copied and its class rows
    keep their init (YOLOv5's intersect_dicts drops the whole tensor). Anchors are copied when both YAMLs give
    the same anchors (the checkpoint's may have been evolved by autoanchor), else the edited YAML's are kept.
    """
    edited_cfg = model.yaml
    if getattr(model, "source", None):
        edited_cfg = {**edited_cfg, "_source": model.source}  # errors name the edited YAML's file
    al = alignment(base_cfg, edited_cfg) if index_map is None else alignment_from_map(base_cfg, edited_cfg,
                                                                                      index_map)
    b_rows = _rows(base_cfg, "base")
    e_rows = _rows(edited_cfg, "edited")
    detect_b = len(b_rows) - 1
    nb = base_nc if base_nc is not None else _base_nc(base_state, base_cfg, detect_b)
    nm = int(model.nc)
    width_differs = base_cfg.get("width_multiple") != edited_cfg.get("width_multiple")
    depth_differs = base_cfg.get("depth_multiple") != edited_cfg.get("depth_multiple")

    base_layers, other = _by_layer(base_state)
    target = model.state_dict()
    layers = model.model
    report = TransferReport(
        base_params=sum(v.numel() for k, v in base_state.items() if is_parameter(k)),
        base_tensors=len(base_state), transferred_params=0, transferred_tensors=0,
        layer_map=dict(al.matched), how=al.how, base_nc=nb, nc=nm)
    for k in other:
        report.skipped.append({"key": k, "to": None, "params": base_state[k].numel() if is_parameter(k) else 0,
                               "reason": "not a layer tensor", "detail": "keys are expected as model.<i>.<name>"})
    anchors_same = base_cfg.get("anchors") == edited_cfg.get("anchors")
    report.anchors = "the edited YAML's (no Detect in the base state)"

    with torch.no_grad():
        for i in sorted(base_layers):
            tensors = base_layers[i]
            if i in al.matched:
                j = al.matched[i]
                is_detect = e_rows[j].module == "Detect"
                for rest, src in tensors.items():
                    key, to = f"model.{i}.{rest}", f"model.{j}.{rest}"
                    params = src.numel() if is_parameter(rest) else 0
                    dst = target.get(to)
                    if is_detect and rest == "anchors":
                        if anchors_same and dst is not None and dst.shape == src.shape:
                            dst.copy_(src)
                            report.transferred_tensors += 1
                            report.anchors = "the base's (both YAMLs give the same anchors)"
                        else:
                            report.anchors = "the edited YAML's (its anchors differ from the base's)"
                        continue
                    if dst is None:
                        reason = "depth differs" if depth_differs else "not in the edited layer"
                        report.skipped.append({"key": key, "to": None, "params": params, "reason": reason,
                                               "detail": f"layer {j} ({e_rows[j].module}) has no {rest}"})
                    elif dst.shape == src.shape:
                        dst.copy_(src)
                        report.transferred_tensors += 1
                        report.transferred_params += params
                    elif is_detect and nb != nm and _copy_box_rows(src, dst, layers[j].na, nb, nm):
                        box = layers[j].na * 5 * src[0].numel()
                        report.transferred_tensors += 1
                        report.transferred_params += box
                        report.skipped.append({
                            "key": key, "to": to, "params": params - box, "reason": f"nc differs ({nb} -> {nm})",
                            "detail": "box and objectness rows copied; class rows keep their init"})
                    else:
                        reason = "width differs" if width_differs else "shape differs"
                        report.skipped.append({"key": key, "to": to, "params": params, "reason": reason,
                                               "detail": f"base {tuple(src.shape)} vs edited {tuple(dst.shape)}"})
            elif i in al.replaced:
                pass  # listed below with the layer's parameters
            elif i not in al.removed:
                report.skipped.extend({"key": f"model.{i}.{rest}", "to": None,
                                       "params": v.numel() if is_parameter(rest) else 0,
                                       "reason": "no such layer in the base YAML",
                                       "detail": f"the base YAML has {len(b_rows)} layers"}
                                      for rest, v in tensors.items())

    for i, j in sorted(al.replaced.items()):
        report.replaced.append({"base_index": i, "base_module": b_rows[i].module,
                                "base_params": _numel(base_layers.get(i, {})), "index": j,
                                "module": e_rows[j].module, "params": int(layers[j].np)})
    report.removed = [{"base_index": i, "base_module": b_rows[i].module,
                       "base_params": _numel(base_layers.get(i, {}))} for i in al.removed]
    report.new = [{"index": j, "module": e_rows[j].module, "params": int(layers[j].np)} for j in al.new]
    copied = {f"model.{al.matched[i]}.{rest}" for i, t in base_layers.items() if i in al.matched for rest in t}
    filled_layers = {str(j) for j in al.matched.values()}
    report.unfilled = [k for k in target if k.split(".")[1] in filled_layers and k not in copied]
    return report


def _copy_box_rows(src: torch.Tensor, dst: torch.Tensor, na: int, nb: int, nm: int) -> bool:
    """Copy Detect's xywh + objectness rows of each anchor from an nb-class tensor into an nm-class one."""
    if src.shape[1:] != dst.shape[1:] or src.shape[0] != na * (nb + 5) or dst.shape[0] != na * (nm + 5):
        return False
    dst.view(na, nm + 5, -1)[:, :5] = src.reshape(na, nb + 5, -1)[:, :5].to(dst)
    return True


# ---------------------------------------------------------------------------------------------------------------
# YOLOv5's rule, for comparison


class RuleResult(NamedTuple):
    """What YOLOv5 train.py's name-and-shape rule keeps, and how much of it lands in the right layer."""

    kept: int  # tensors kept (train.py prints `Transferred kept/total items`)
    total: int  # tensors in the edited model's state dict
    share: float  # base parameters that land in the layer playing their role / the base's parameters
    misplaced: int  # kept tensors loaded into a layer of another role (BatchNorm step counters aside)


def yolov5_rule(base_state: dict[str, torch.Tensor], model_state: dict[str, torch.Tensor],
                index_map: dict[int, int]) -> RuleResult:
    """YOLOv5 v7.0 train.py with --cfg: keep k when it is in both state dicts with the same shape and is not
    an anchor key; `index_map` (the true old -> new map) says which kept tensors landed in their own role."""
    kept = [k for k, v in base_state.items()
            if k in model_state and "anchor" not in k and v.shape == model_state[k].shape]
    right, misplaced = 0, 0
    for k in kept:
        where = layer_of(k)
        if where is not None and index_map.get(where[0]) == where[0]:
            right += base_state[k].numel() if is_parameter(k) else 0
        elif not k.endswith("num_batches_tracked"):  # a step counter, not a weight
            misplaced += 1
    total_params = sum(v.numel() for k, v in base_state.items() if is_parameter(k))
    return RuleResult(len(kept), len(model_state), right / total_params if total_params else 0.0, misplaced)

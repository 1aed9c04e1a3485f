"""Transfer a base model's weights into an edited model so that every surviving base layer lands in the layer
that now plays its role (nas.weights.align says which), with a report of what was copied, new, replaced or
skipped and why. YOLOv5's own name-and-shape rule, for comparison, is nas.weights.rule.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import torch

from nas.weights.align import alignment, alignment_from_map, is_parameter, layer_of, layer_rows


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
    b_rows = layer_rows(base_cfg, "base")
    e_rows = layer_rows(edited_cfg, "edited")
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


__all__ = ["TransferReport", "transfer"]

"""Which base layer plays which role in an edited model: the render's old -> new index map checked, or the two
YAMLs' layer lists aligned (module, arguments, relative sources), for any hand-edited YAML."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import Any

import blocks
from nas.errors import NasError
from nas.model import source_index

BUFFER_NAMES = ("running_mean", "running_var", "num_batches_tracked", "anchors", "anchor_grid")
_KEY = re.compile(r"^model\.(\d+)\.(.+)$")


def is_parameter(key: str) -> bool:
    """Whether a state-dict key of a YOLOv5 model names a parameter (not a BatchNorm statistic or anchors)."""
    return key.rsplit(".", 1)[-1] not in BUFFER_NAMES


def layer_of(key: str) -> tuple[int, str] | None:
    """`model.17.cv1.conv.weight` -> (17, 'cv1.conv.weight'); None for a key outside the layer list."""
    m = _KEY.match(key)
    return (int(m.group(1)), m.group(2)) if m else None



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


def layer_rows(cfg: dict, what: str) -> list[_Row]:
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
    b = layer_rows(base_cfg, _source(base_cfg, "base model YAML"))
    e = layer_rows(edited_cfg, _source(edited_cfg, "edited model YAML"))
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
    b = layer_rows(base_cfg, _source(base_cfg, "base model YAML"))
    e = layer_rows(edited_cfg, _source(edited_cfg, "edited model YAML"))
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


__all__ = ["Alignment", "BUFFER_NAMES", "align_layers", "alignment", "alignment_from_map", "is_parameter", "layer_of",
           "layer_rows"]

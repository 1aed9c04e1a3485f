"""The data every trial of a search trains on, after the space's own checks against it (memory, nc)."""

from __future__ import annotations

from nas.data.dataset import list_images
from nas.data.resolve import proxy_data, synthetic_config
from nas.errors import NasError
from nas.search.options import SearchOptions
from nas.train.memory import check_proxy_memory
from nas.train.trainer import resolve_data


def resolve_search_data(opts: SearchOptions, space=None):
    """The DataSpec every trial trains on (nas.data.resolve: the built-in synthetic set unless --data is given),
    after the space's own checks against it: its widest base must fit in memory, its nc must be the data's."""
    synthetic = (opts.synthetic_train, opts.synthetic_val)
    if space is not None:  # before an image is made or read: the base at its widest and deepest must fit
        widest = dict(space.base_cfg, depth_multiple=max(space.depth_multiple),
                      width_multiple=max(space.width_multiple))
        check_search_memory(widest, opts, space.nc, synthetic_config(opts.imgsz, synthetic))
    spec = proxy_data(opts.data, opts.imgsz, synthetic)  # missing or empty splits fail before a study is touched
    if space is not None and space.nc is not None and space.nc != spec.nc:
        raise NasError(f"{space.path}: nc={space.nc} but the data has {spec.nc} classes ({opts.data or 'synthetic'}); "
                       f"remove nc from the space or use matching data")
    return spec


def check_search_memory(cfg: dict, opts: SearchOptions, nc: int | None, synthetic) -> None:
    """NasError when training cfg at --imgsz and --batch cannot fit in this machine's memory."""
    if opts.data:
        spec = resolve_data(opts.data, opts.imgsz)
        where = str(spec.yaml) if spec.yaml else "the data dict"
        n_train, n_val = (len(list_images(getattr(spec, s), s, where)) for s in ("train", "val"))
        nc = nc or spec.nc
    else:
        n_train, n_val, nc = synthetic.n_train, synthetic.n_val, nc or len(synthetic.names)
    check_proxy_memory(cfg, nc, opts.imgsz, opts.batch, n_train, n_val,
                       what=f"the space's base at width {cfg['width_multiple']}")


__all__ = ["check_search_memory", "resolve_search_data"]

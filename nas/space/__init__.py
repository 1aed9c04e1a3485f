"""Search spaces by concern: the schema and its validation (schema), sampling an Optuna trial into an
Architecture (sampling), rendering an Architecture to a model YAML (render). Pricing a space lives in nas.cost."""

from nas.space.render import model_hash, render, render_with_map, to_yaml
from nas.space.sampling import baseline, block_configs, has_baseline, n_architectures, sample, trial_params
from nas.space.schema import (
    KEEP,
    NONE,
    SHIPPED,
    Architecture,
    Point,
    Space,
    load_space,
    resolve_space_path,
    shipped_spaces,
)

__all__ = ["KEEP", "NONE", "SHIPPED", "Architecture", "Point", "Space", "baseline", "block_configs", "has_baseline",
           "load_space", "model_hash", "n_architectures", "render", "render_with_map", "resolve_space_path", "sample",
           "shipped_spaces", "to_yaml", "trial_params"]

"""The attention blocks a search may insert into a YOLOv5 model, and the registry the model builder reads.

Each block takes NCHW and returns the same shape (FocalModulation may change the channel count, to
replace SPPF). Each registers itself where it is defined (blocks/registry.py). In a model YAML a block's
args are `[channels, *hyperparameters]`; the builder calls `yaml_hyperparameters(name, c1, args[1:])` then
`build(name, c1, c2, **hp)`. See blocks/README.md.
"""

from __future__ import annotations

# imported in registry order: SGE, GE, FLA, BiFormer, FocalModulation
from blocks.sge import SGE  # isort: skip
from blocks.ge import GE  # isort: skip
from blocks.fla import FLA  # isort: skip
from blocks.biformer import BiFormer  # isort: skip
from blocks.focal import FocalModulation  # isort: skip
from blocks.registry import (
    ALIASES,
    REGISTRY,
    BlockError,
    BlockSpec,
    build,
    choices_for,
    resolve,
    validate,
    yaml_hyperparameters,
)

__all__ = [
    "ALIASES", "REGISTRY", "BlockError", "BlockSpec", "BiFormer", "FLA", "FocalModulation", "GE", "SGE",
    "build", "choices_for", "resolve", "validate", "yaml_hyperparameters",
]

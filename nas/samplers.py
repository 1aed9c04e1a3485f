"""The Optuna samplers `nas search --sampler` offers; all read the constraints set with trial.set_constraint."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from nas.errors import NasError

if TYPE_CHECKING:
    import optuna

SAMPLERS = ("tpe", "nsga2", "gp", "random")


def check_sampler(name: str) -> None:
    """NasError for a sampler name nas does not offer."""
    if name not in SAMPLERS:
        raise NasError(f"--sampler {name!r} is unknown; choose one of {', '.join(SAMPLERS)}")


def make_sampler(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    """The sampler for --sampler: multivariate TPE (default), NSGA-II, GP (needs scipy) or random."""
    import optuna

    check_sampler(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=8)
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=20)
        if name == "gp":
            try:
                import scipy  # noqa: F401
            except ImportError:
                raise NasError("--sampler gp needs scipy: pip install scipy") from None
            return optuna.samplers.GPSampler(seed=seed)
        return optuna.samplers.RandomSampler(seed=seed)


__all__ = ["SAMPLERS", "check_sampler", "make_sampler"]

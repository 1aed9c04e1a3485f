"""The Optuna samplers `nas search --sampler` offers; all read the constraints set with trial.set_constraint."""

from __future__ import annotations

import copy
import warnings

import optuna

from nas.errors import NasError
from nas.lazy import lazy

scipy = lazy("scipy")  # --sampler gp only

SAMPLERS = ("tpe", "nsga2", "gp", "random")


def check_sampler(name: str) -> None:
    """NasError for a sampler name nas does not offer."""
    if name not in SAMPLERS:
        raise NasError(f"--sampler {name!r} is unknown; choose one of {', '.join(SAMPLERS)}")


def make_sampler(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    """The sampler for --sampler: multivariate TPE (default), NSGA-II, GP (needs scipy) or random."""
    check_sampler(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            return _tpe_reading_once()(seed=seed, multivariate=True, group=True, n_startup_trials=8)
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=20)
        if name == "gp":
            if not scipy.available():
                raise NasError("--sampler gp needs scipy: pip install scipy")
            return optuna.samplers.GPSampler(seed=seed)
        return optuna.samplers.RandomSampler(seed=seed)


class _TrialsReadOnce:
    """A study seen through one read of its trials, for the span of one sampling call.

    Optuna's TPE (constant_liar on, so that parallel workers see each other's running trials) reads every trial
    from the storage once per parameter group: about a dozen full reads of the study per sampled candidate,
    most of a rejected candidate's time. One read per candidate sees the same trials.
    """

    def __init__(self, study: optuna.Study):
        self._study = study
        self._trials: list | None = None

    def _get_trials(self, deepcopy: bool = True, states=None, use_cache: bool = False) -> list:
        if self._trials is None:
            self._trials = self._study._get_trials(deepcopy=False, states=None, use_cache=False)
        trials = self._trials if states is None else [t for t in self._trials if t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    def get_trials(self, deepcopy: bool = True, states=None) -> list:
        return self._get_trials(deepcopy, states)

    @property
    def trials(self) -> list:
        return self._get_trials()

    def __getattr__(self, name: str):
        return getattr(self._study, name)


def _tpe_reading_once() -> type:
    """TPESampler whose relative sampling reads the study's trials once per candidate (same samples)."""
    class TPESampler(optuna.samplers.TPESampler):
        def sample_relative(self, study, trial, search_space):
            return super().sample_relative(_TrialsReadOnce(study), trial, search_space)

    return TPESampler


__all__ = ["SAMPLERS", "check_sampler", "make_sampler"]

"""nas's TPE reads the study once per candidate and samples exactly what Optuna's TPESampler samples."""

from __future__ import annotations

import warnings

import optuna
import pytest

from nas.search.samplers import make_sampler

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _objective(trial: optuna.Trial) -> tuple[float, float]:
    block = trial.suggest_categorical("P3", ["none", "SGE", "GE"])
    if block == "SGE":
        groups = trial.suggest_categorical("P3_groups", [4, 8, 16])
    else:
        groups = 1
    width = trial.suggest_categorical("width", [0.25, 0.375])
    trial.set_constraint("gflops", width * 10 - 3.0)
    return width * groups + (block == "GE"), width * 10


class _CountingStorage(optuna.storages.InMemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get_all_trials(self, *args, **kwargs):
        self.reads += 1
        return super().get_all_trials(*args, **kwargs)


def _run(sampler, storage=None, n: int = 30) -> list[dict]:
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler, storage=storage)
    study.optimize(_objective, n_trials=n)
    return [t.params for t in study.trials]


def test_same_samples_as_optunas_tpe():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        plain = optuna.samplers.TPESampler(seed=3, multivariate=True, group=True, n_startup_trials=8)
    assert _run(make_sampler("tpe", 3)) == _run(plain)


def test_one_read_of_the_study_per_candidate():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        plain = optuna.samplers.TPESampler(seed=3, multivariate=True, group=True, n_startup_trials=8)
    counted_plain, counted_nas = _CountingStorage(), _CountingStorage()
    _run(plain, counted_plain, n=20)
    _run(make_sampler("tpe", 3), counted_nas, n=20)
    # past the startup trials Optuna reads the study once per parameter group and once more for the space
    assert counted_nas.reads < counted_plain.reads
    with_nas_per_trial = counted_nas.reads / 20
    assert with_nas_per_trial <= 4, with_nas_per_trial


@pytest.mark.parametrize("name", ["tpe", "random", "nsga2"])
def test_samplers_run_a_conditional_space(name):
    params = _run(make_sampler(name, 0), n=12)
    assert len(params) == 12 and all("width" in p for p in params)

"""Outcome counts and the best-fitness order (the front and picks are tested in test_results.py)."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState, create_trial

from nas.pareto import best, count_outcomes, scored_trials


def _trial(outcome: str | None, state: TrialState = TrialState.COMPLETE, values=(0.1, 1.0)):
    attrs = {} if outcome is None else {"outcome": outcome}
    return create_trial(state=state, values=None if state != TrialState.COMPLETE else list(values),
                        user_attrs=attrs)


def test_count_outcomes() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    for t in (_trial("trained"), _trial("stopped"), _trial("rejected"), _trial("reused"),
              _trial("failed", TrialState.FAIL), _trial(None, TrialState.FAIL)):
        study.add_trial(t)
    c = count_outcomes(study)
    assert (c["trained"], c["stopped"], c["rejected"], c["reused"], c["failed"]) == (2, 1, 1, 1, 2)
    assert (c["total"], c["complete"], c["fail"], c["feasible"]) == (6, 4, 2, 4)
    assert [t.number for t in scored_trials(study)] == [0, 1]


def test_best_breaks_ties_by_gflops_then_trial() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    for values in [(0.5, 2.0), (0.5, 1.0), (0.4, 0.5), (0.5, 1.0)]:
        study.add_trial(_trial("trained", values=values))
    assert best(study.trials).number == 1

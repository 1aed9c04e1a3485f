"""Outcome counts, the best-fitness order and ties within noise (the front and picks: test_results.py)."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState, create_trial

from nas.front.pareto import best, count_outcomes, is_feasible, scored_trials, tied_with, ties
from nas.record import Outcome, TrialRecord


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


def _rec(number: int, fitness: float, gflops: float) -> TrialRecord:
    return TrialRecord(number=number, state="COMPLETE", values=(fitness, gflops), outcome=Outcome.TRAINED)


def test_ties_within_the_measured_noise() -> None:
    front = [_rec(0, 0.30, 4.1), _rec(1, 0.31, 4.2), _rec(2, 0.35, 5.0), _rec(3, 0.365, 6.0), _rec(4, 0.40, 9.0)]
    assert ties(front, None) is None  # no audit: unknown, not "no ties"
    assert ties(front, 0.02) == {0: [1], 1: [], 2: [3], 3: [], 4: []}
    # a wide noise band ties a trial with every better one within it, several at once
    assert ties(front, 0.06) == {0: [1, 2], 1: [2, 3], 2: [3, 4], 3: [4], 4: []}
    assert ties(front, 0.0) == {n: [] for n in range(5)}
    assert tied_with(front, 3, 0.02) == [2] and tied_with(front, 2, 0.02) == [3]
    assert tied_with(front, 4, 0.02) == [] and tied_with(front, 4, None) is None
    # equal fitness ties both ways; the earlier trial counts as the better one (as in `best`)
    equal = [_rec(5, 0.3, 1.0), _rec(7, 0.3, 1.0)]
    assert ties(equal, 0.0) == {5: [], 7: [5]} and tied_with(equal, 5, 0.0) == [7]


def test_is_feasible_reads_records_and_trials_alike() -> None:
    over = TrialRecord(number=0, state="COMPLETE", values=(0.0, 12.0), constraints={"gflops": 2.0})
    assert not is_feasible(over) and is_feasible(_rec(1, 0.3, 4.0))
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trial(create_trial(values=[0.0, 12.0], constraints={"gflops": 2.0}))
    assert not is_feasible(study.trials[0])


def test_front_lists_a_reused_twin_once_under_the_trial_it_reused() -> None:
    """A reused trial is the same model with the same score: the front shows the trained trial and names the
    twins; a twin whose source is not on the front (or an equal score of another model) is not folded."""
    from nas.front.pareto import pareto_front, twins

    study = optuna.create_study(directions=["maximize", "minimize"])
    rows = [((0.10, 4.0), "trained", None), ((0.20, 5.0), "trained", None), ((0.10, 4.0), "reused", 0),
            ((0.20, 5.0), "reused", 1), ((0.10, 4.0), "reused", 0), ((0.20, 5.0), "trained", None),
            ((0.05, 6.0), "trained", None), ((0.05, 6.0), "reused", 6)]
    for values, outcome, source in rows:
        attrs = {"outcome": outcome} | ({} if source is None else {"reused_from": source})
        study.add_trial(create_trial(values=list(values), user_attrs=attrs))
    assert [t.number for t in pareto_front(study)] == [0, 1, 5]  # 5: another model with an equal score
    assert twins(study) == {0: [2, 4], 1: [3], 6: [7]}  # 6 and its twin 7 are dominated: neither is listed

"""Multi-objective successive halving: rung placement, Pareto-rank decisions, and the study-backed stop rule."""

from __future__ import annotations

import optuna
import pytest
import torch
from optuna.trial import TrialState, create_trial

from nas.data import SyntheticConfig, synthetic_dataset
from nas.errors import NasError
from nas.model import load_cfg
from nas.search.rungs import SuccessiveHalving, fronts, promote, rung_epochs, rung_scores
from nas.train import train_and_evaluate

optuna.logging.set_verbosity(optuna.logging.WARNING)


# ------------------------------------------------------------------------------------------ rung epochs


@pytest.mark.parametrize(("epochs", "eta", "min_epoch", "expected"), [
    (8, 3, 1, [1, 3]),  # 8/3 = 2.67 -> 3, 8/9 = 0.89 -> 1
    (24, 3, 1, [1, 3, 8]),
    (24, 3, 2, [3, 8]),  # the audit says the ranking forms at epoch 2: no rung before it
    (27, 3, 1, [1, 3, 9]),
    (10, 4, 1, [1, 3]),  # 10/4 = 2.5 rounds half up
    (2, 2, 1, [1]),
    (8, 3, 4, [4]),  # no geometric rung at or after epoch 4 and before 8: one rung where the ranking formed
    (8, 3, 6, [6]),
    (8, 3, 8, []),  # the ranking forms only at the last epoch: nothing is stopped
    (1, 3, 1, []),
    (3, 3, 3, []),  # a rung at the last epoch decides nothing
])
def test_rung_epochs(epochs, eta, min_epoch, expected):
    assert rung_epochs(epochs, eta, min_epoch) == expected


@pytest.mark.parametrize(("epochs", "eta", "min_epoch"), [(8, 1, 1), (8, 3, 0), (0, 3, 1), (8, 2.5, 1)])
def test_rung_epochs_refuses_bad_settings(epochs, eta, min_epoch):
    with pytest.raises(NasError, match="at least"):
        rung_epochs(epochs, eta, min_epoch)


# ------------------------------------------------------------------------------------ rung decisions


def test_fronts_by_dominance():
    scores = [("a", 0.5, 1.0), ("b", 0.4, 2.0), ("c", 0.45, 1.5), ("d", 0.6, 3.0)]
    assert [[scores[i][0] for i in f] for f in fronts(scores)] == [["a", "d"], ["c"], ["b"]]


def test_dominated_candidate_stops_and_dominating_one_goes_on():
    scores = [("a", 0.5, 1.0), ("b", 0.4, 2.0), ("c", 0.45, 1.5)]  # a dominates both others; keep 1 of 3
    assert promote(scores, "a")
    assert not promote(scores, "b")
    assert not promote(scores, "c")


def test_cheaper_but_worse_survives_because_it_is_non_dominated():
    scores = [("best", 0.6, 8.0), ("cheap", 0.3, 1.0), ("x", 0.5, 9.0), ("y", 0.2, 5.0), ("z", 0.4, 8.5),
              ("w", 0.1, 6.0)]  # keep 2 of 6: the Pareto front {best, cheap}
    assert promote(scores, "best") and promote(scores, "cheap")
    assert not promote(scores, "x")  # more accurate than cheap, but dominated by best
    assert [s[0] for s in scores if promote(scores, s[0])] == ["best", "cheap"]


@pytest.mark.parametrize(("n", "kept"), [(9, 3), (10, 4), (4, 2)])
def test_top_one_over_eta_boundary(n, kept):
    # a chain: each candidate dominates the next, so the ranking is total and exactly ceil(n/3) go on
    scores = [(k, 0.9 - 0.05 * k, 1.0 + k) for k in range(n)]
    assert [promote(scores, k) for k in range(n)] == [k < kept for k in range(n)]


def test_fewer_than_eta_records_continue():
    scores = [("good", 0.5, 1.0), ("bad", 0.1, 9.0)]
    assert promote(scores, "bad", eta=3)
    assert not promote([*scores, ("ok", 0.3, 2.0)], "bad", eta=3)
    assert not promote(scores, "bad", eta=2)


def test_identical_scores_tie_and_a_tie_at_the_boundary_goes_on():
    scores = [("a", 0.5, 1.0), ("twin", 0.5, 1.0), ("c", 0.2, 3.0)]  # keep 1 of 3, but a and twin tie
    assert promote(scores, "a") and promote(scores, "twin")
    assert not promote(scores, "c")


def test_ends_of_the_last_front_beat_its_crowded_middle():
    front = [("lo", 0.3, 1.0), ("near_lo", 0.35, 1.5), ("mid", 0.5, 3.0), ("hi", 0.6, 5.0)]
    dominated = [(f"d{k}", 0.31 + 0.02 * k, 4.9) for k in range(5)]  # each dominated by mid
    scores = front + dominated  # keep 3 of 9: the whole front does not fit
    kept = [s[0] for s in scores if promote(scores, s[0])]
    assert kept == ["lo", "mid", "hi"]  # near_lo sits next to lo: smallest crowding distance


def test_equal_crowding_in_the_last_front_goes_to_higher_fitness():
    scores = [("accurate", 0.6, 5.0), ("cheap", 0.3, 1.0), ("d", 0.2, 6.0)]  # keep 1; both ends are infinite
    assert promote(scores, "accurate")
    assert not promote(scores, "cheap")


def test_unknown_candidate_is_a_bug():
    with pytest.raises(ValueError, match="not among"):
        promote([("a", 0.5, 1.0)], "b")


# ------------------------------------------------------------------------- the study-backed stop rule


def new_study(storage=None, name=None):
    return optuna.create_study(directions=["maximize", "minimize"], storage=storage, study_name=name,
                               load_if_exists=True)


def add_complete(study, fitness, gflops, rungs):
    study.add_trial(create_trial(values=[fitness, gflops], user_attrs={"gflops": gflops, "rungs": rungs}))


def ask(study, gflops):
    """A new candidate; the search records its GFLOPs before training it."""
    t = study.ask()
    t.set_user_attr("gflops", gflops)
    return t


def add_running(study, gflops, rungs):
    """A candidate another worker is training right now."""
    ask(study, gflops).set_user_attr("rungs", rungs)


def test_dominated_candidate_is_stopped_with_its_rung_and_score_recorded():
    study = new_study()
    add_complete(study, 0.30, 1.0, {"1": 0.30, "3": 0.40})
    add_complete(study, 0.25, 1.5, {"1": 0.25})
    me = study.ask()
    stop = SuccessiveHalving(me, gflops=2.0, epochs=8, eta=3)
    assert stop.epochs == [1, 3]
    assert stop.should_stop({"epoch": 1, "fitness": 0.1234567})
    assert "epoch 1" in stop.reason and "0.1235" in stop.reason and "of 3 candidates" in stop.reason
    assert stop.stopped == {"epoch": 1, "fitness": 0.123457, "compared": 3, "kept": 1, "reason": stop.reason}
    assert study.trials[me.number].user_attrs["rungs"] == {"1": 0.123457}


def test_non_dominated_candidate_goes_on_and_keeps_every_rung_record():
    study = new_study()
    add_complete(study, 0.30, 1.0, {"1": 0.30, "3": 0.40})
    add_complete(study, 0.25, 1.5, {"1": 0.25, "3": 0.35})
    add_complete(study, 0.20, 1.2, {"1": 0.20, "3": 0.30})
    me = study.ask()
    stop = SuccessiveHalving(me, gflops=0.5, epochs=8, eta=3)  # the cheapest: on the front whatever its score
    # keep 2 of 4: the front is {trial 0, me}
    assert not stop.should_stop({"epoch": 1, "fitness": 0.05})
    assert not stop.should_stop({"epoch": 2})  # not a rung: no evaluation needed, nothing recorded
    assert not stop.should_stop({"epoch": 3, "fitness": 0.06})
    assert stop.reason == "" and stop.stopped is None
    assert study.trials[me.number].user_attrs["rungs"] == {"1": 0.05, "3": 0.06}


def test_records_of_running_trials_count_and_failed_ones_do_not():
    study = new_study()
    add_complete(study, 0.30, 1.0, {"1": 0.30})
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"gflops": 0.1, "rungs": {"1": 0.9}}))
    mine = ask(study, 2.0)
    assert not SuccessiveHalving(mine, gflops=2.0, epochs=8).should_stop({"epoch": 1, "fitness": 0.1})  # 2 < eta

    add_running(study, gflops=1.5, rungs={"1": 0.25})  # another worker reached the rung meanwhile
    late = ask(study, 2.0)
    stop = SuccessiveHalving(late, gflops=2.0, epochs=8)
    assert stop.should_stop({"epoch": 1, "fitness": 0.1})
    assert stop.stopped["compared"] == 4  # complete + running + the first one of mine (running) + itself
    assert sorted(s[0] for s in rung_scores(study, 1)) == [0, 2, 3, 4]


def test_records_at_other_rungs_are_not_compared():
    study = new_study()
    add_complete(study, 0.30, 1.0, {"3": 0.30})
    add_complete(study, 0.25, 1.5, {"3": 0.25})
    stop = SuccessiveHalving(study.ask(), gflops=2.0, epochs=8)
    assert not stop.should_stop({"epoch": 1, "fitness": 0.1})  # nobody else recorded epoch 1


def test_a_rung_without_fitness_is_a_wiring_bug():
    stop = SuccessiveHalving(new_study().ask(), gflops=1.0, epochs=8)
    with pytest.raises(ValueError, match="evaluate at"):
        stop.should_stop({"epoch": 3, "loss": 1.0})


def test_rung_records_live_in_the_storage_for_other_workers_and_resumes(tmp_path):
    url = f"sqlite:///{tmp_path / 'rungs.db'}"
    first = new_study(url, "s")  # one worker process ...
    add_complete(first, 0.30, 1.0, {"1": 0.30})
    running = ask(first, 1.5)
    SuccessiveHalving(running, gflops=1.5, epochs=8).should_stop({"epoch": 1, "fitness": 0.25})

    second = optuna.load_study(study_name="s", storage=url)  # ... and another one, or a resume
    assert {s[0]: s[1] for s in rung_scores(second, 1)} == {0: 0.30, 1: 0.25}
    stop = SuccessiveHalving(second.ask(), gflops=2.0, epochs=8)
    assert stop.should_stop({"epoch": 1, "fitness": 0.1})
    assert stop.stopped["compared"] == 3


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_stops_a_real_proxy_run_at_the_first_rung(tmp_path, one_thread):
    study = new_study()
    add_complete(study, 0.5, 0.0, {"1": 0.5})  # reached the rung with far more fitness at no GFLOPs
    add_complete(study, 0.4, 0.0, {"1": 0.4})
    trial = study.ask()
    cfg = load_cfg("yolov5n")
    cfg.pop("_source", None)
    cfg["width_multiple"] = 0.125
    data = synthetic_dataset(SyntheticConfig(n_train=8, n_val=4, size=64, nc=2), tmp_path)
    stop = SuccessiveHalving(trial, gflops=0.01, epochs=3)
    assert stop.epochs == [1]
    result = train_and_evaluate(cfg, data, epochs=3, imgsz=64, batch=8, seed=0,
                                callback=lambda r: not stop.should_stop(r))
    assert result.status == "stopped" and result.epochs == 1
    assert stop.stopped["epoch"] == 1
    assert study.trials[trial.number].user_attrs["rungs"] == {"1": round(result.history[0]["fitness"], 6)}


# ------------------------------------------------------------------------ where the first rung goes


@pytest.mark.parametrize(("epochs", "formed", "expected"), [
    (8, None, 6),  # no audit: where the ranking formed on the built-in data
    (4, None, 4),  # the default proxy: formed only at its last epoch, so no rung
    (24, None, 18),
    (27, None, 20),
    (2, None, 2),
    (24, 2, 2),  # the audit says the ranking forms at epoch 2
    (8, 6, 6),
])
def test_first_rung(epochs, formed, expected):
    from nas.search.rungs import first_rung

    assert first_rung(epochs, formed) == expected


def test_the_default_proxy_has_no_rung_without_an_audit():
    from nas.search.options import SearchOptions
    from nas.search.rungs import first_rung

    epochs = SearchOptions(space="neck", budget=None).epochs
    assert rung_epochs(epochs, 3, first_rung(epochs)) == []


def _summary(**changes):
    from nas.record import AuditSummary

    doc = dict(tau=0.8, tau_low=0.6, tau_high=0.9, rho=0.9, tau_gflops=0.3, noise_sd=0.01, noise=0.02, seed_tau=0.7,
               n_candidates=12, proxy_epochs=24, reference_epochs=96, seeds=2, verdict="ok", formed_epoch=2)
    return AuditSummary(**{**doc, **changes}).to_attr()


def test_study_rungs_follow_the_audit_of_this_proxy_length():
    from nas.record import SUMMARY_ATTR
    from nas.search.rungs import study_rungs

    study = new_study()
    assert study_rungs(study, 24)[0] == [18]  # no audit: where the ranking formed on the built-in data
    study.set_user_attr(SUMMARY_ATTR, _summary())
    rungs, why = study_rungs(study, 24)
    assert rungs == [3, 8] and "epoch 2" in why  # epoch 1 is before the ranking formed
    assert study_rungs(study, 24, eta=2)[0] == [2, 3, 6, 12]
    assert study_rungs(study, 12)[0] == [9]  # an audit of another proxy length says nothing about this one
    study.set_user_attr(SUMMARY_ATTR, _summary(formed_epoch=None))  # an older audit, without the field
    assert study_rungs(study, 24)[0] == [18]


def test_audit_summary_keeps_the_epoch_the_ranking_formed_and_skips_unscored_epochs():
    from nas.audit import CandidateRuns, build_report
    from nas.record import AuditSummary

    cands = []
    for k, (f1, f2, ref) in enumerate([(0.1, 0.2, 0.3), (0.2, 0.3, 0.4), (0.3, 0.4, 0.5), (0.4, 0.5, 0.6)]):
        history = [{"epoch": 1, "fitness": f1}, {"epoch": 2, "fitness": f2}]
        if k == 0:
            history[0] = {"epoch": 1, "loss": 1.0}  # scored only at the rungs and the last epoch
        cands.append(CandidateRuns(f"c{k}", f"c{k}", 1.0 + k, 100, proxy={0: {"fitness": f2, "history": history}},
                                   reference={"fitness": ref}))
    report = build_report("s", cands, proxy_epochs=2, reference_epochs=8, seed=0, seeds=0, n_boot=10)
    assert [p["n"] for p in report.tau_per_epoch] == [3, 4]
    assert report.formed_epoch == 1
    assert AuditSummary.from_report(report).formed_epoch == 1

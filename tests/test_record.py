"""The trial record: written and read in one place, under the stored names of docs/CONTRACTS.md."""

from __future__ import annotations

import json
import warnings

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from nas.record import Outcome, StudyRecord, TrialRecord, read, read_study, study_attrs, write


def _study() -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(directions=["maximize", "minimize"])


def test_write_then_read_round_trips_under_the_contract_names() -> None:
    study = _study()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trial = study.ask()
    write(trial, choices={"p4": "SGE(groups=8)"}, gflops=1.5, params=1000, fitness=0.3, mAP50=0.5, mAP50_95=0.27,
          history=[{"epoch": 1, "fitness": 0.3}], outcome=Outcome.STOPPED, baseline=False)
    assert trial.user_attrs["mAP50-95"] == 0.27 and "mAP50_95" not in trial.user_attrs
    assert trial.user_attrs["outcome"] == "stopped"  # plain text in the storage
    study.tell(trial, [0.3, 1.5])
    r = read(study.trials[0])
    assert r.complete and r.scored and r.outcome is Outcome.STOPPED
    assert (r.fitness, r.mAP50, r.mAP50_95, r.gflops, r.params) == (0.3, 0.5, 0.27, 1.5, 1000)
    assert r.objective_fitness == 0.3 and r.objective_gflops == 1.5 and r.choices == {"p4": "SGE(groups=8)"}


def test_write_refuses_unknown_fields() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trial = _study().ask()
    with pytest.raises(TypeError, match="not a stored trial record field"):
        write(trial, fitnes=0.3)


def test_old_and_damaged_records_read_as_missing() -> None:
    t = create_trial(state=TrialState.FAIL, user_attrs={"gflops": "nan", "params": True, "outcome": "weird",
                                                        "history": "x", "fail_reason": "NaN loss"})
    r = read(t)
    assert r.gflops is None and r.params is None and r.outcome is None and r.history == []
    assert r.fail_reason == "NaN loss" and not r.scored and r.objective_fitness is None


def test_outcome_is_plain_text() -> None:
    assert json.dumps({"o": Outcome.TRAINED}) == '{"o": "trained"}'
    assert str(Outcome.FAILED) == "failed" and Outcome("reused") is Outcome.REUSED
    assert [o.scored for o in Outcome] == [True, True, False, False, False]


def test_study_record_round_trip_and_foreign_studies() -> None:
    study = _study()
    assert not read_study(study).made_by_nas
    attrs = study_attrs(StudyRecord(space_hash="abc", imgsz=(256, 320), points=["p4"], budget={"gflops": 1.0}))
    for k, v in attrs.items():
        study.set_user_attr(k, v)
    assert study.user_attrs["imgsz"] == [256, 320]
    s = read_study(study)
    assert s.made_by_nas and s.imgsz == (256, 320) and s.points == ["p4"] and s.proxy is None


def test_trial_record_defaults_are_independent() -> None:
    a, b = TrialRecord(), TrialRecord()
    a.history.append({"epoch": 1})
    assert b.history == []


def test_describe_shows_every_choice_in_one_short_line() -> None:
    from nas.record import describe
    from nas.space.schema import Architecture

    arch = Architecture(0.33, 0.375, {"P3": {"block": "SGE", "groups": 8}, "P4": {"block": "none"},
                                      "P5": {"block": "FLA", "num_heads": 4, "focusing_factor": 3, "kernel_size": 5}})
    want = "w0.375 d0.33 P3=SGE(groups=8) P5=FLA(num_heads=4, focusing_factor=3, kernel_size=5)"
    assert describe(arch) == want
    assert describe(arch.to_dict()) == want  # the stored `arch` attr
    record = TrialRecord(choices=arch.short(), arch=arch.to_dict())
    assert describe(record) == want
    assert describe(record, points=["P5", "P3"]).endswith("P5=FLA(num_heads=4, focusing_factor=3, kernel_size=5) "
                                                          "P3=SGE(groups=8)")
    base = Architecture(0.33, 0.25, {"P3": {"block": "none"}, "SPPF": {"block": "keep"}})
    assert describe(base) == "w0.25 d0.33 (no blocks)"
    # a record written before `arch` existed still shows its blocks
    assert describe(TrialRecord(choices={"p4": "GE(extent=4)", "p5": "none"})) == "p4=GE(extent=4)"
    assert describe(TrialRecord()) == "(no blocks)"

"""What optuna-dashboard shows of a nas study, read through the dashboard's own API (its WSGI app)."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import yaml
from click.testing import CliRunner
from werkzeug.test import Client

from nas import storage as S
from nas.cli import main
from nas.data import SyntheticConfig, synthetic_dataset
from nas.record import model_yaml_artifact, read, read_history, read_model_yaml

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {  # width 0.5 is 16.4 GFLOPs at 640, over a 10 GFLOPs budget: rejected, never trained
    "base": "yolov5n",
    "imgsz": 640,
    "width_multiple": [0.25, 0.5],
    "hyperparameters": {"SGE": {"groups": [4, 8]}},
    "insert": [{"after": 23, "name": "P5", "blocks": ["none", "SGE", "GE"]}],
}
URL = "sqlite:///studies/nas.db"
MAX_ATTR = 200  # a table cell, not a page


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny real search (1 epoch at 64 px) whose study holds trained and rejected candidates."""
    from nas.space import load_space, trial_params

    folder = tmp_path_factory.mktemp("dash")
    data = str(synthetic_dataset(SyntheticConfig(n_train=16, n_val=8, size=64, nc=2), cache_dir=folder / "data"))
    (folder / "space.yaml").write_text(yaml.safe_dump(SPACE))
    args = ["search", "--space", "space.yaml", "--budget", "10gflops", "--data", data, "--epochs", "1",
            "--imgsz", "64", "--batch", "8", "--sampler", "random", "--storage", URL]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        assert CliRunner().invoke(main, [*args, "--trials", "1"]).exit_code == 0
        study = optuna.load_study(study_name="space", storage=URL)
        space = load_space("space.yaml")
        wide = {k: v for k, v in trial_params(space, _baseline(space)).items()}
        wide["width_multiple"] = 0.5
        study.enqueue_trial(wide)  # certainly over the budget
        r = CliRunner().invoke(main, [*args, "--trials", "2"])
        assert r.exit_code == 0, r.output
    return folder


def _baseline(space):
    from nas.space import baseline

    return baseline(space)


def _api(folder: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, optuna.Study]:
    import optuna_dashboard

    monkeypatch.chdir(folder)
    storage = S.resolve_storage(URL, create=False)
    study = optuna.load_study(study_name="space", storage=storage)
    app = optuna_dashboard.wsgi(storage, artifact_store=S.artifact_store(URL))
    response = Client(app).get(f"/api/studies/{study._study_id}?after=0")
    assert response.status_code == 200
    return json.loads(response.get_data(as_text=True)), study


def test_dashboard_sees_rejected_trials_infeasible_and_short_attrs(searched: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    doc, study = _api(searched, monkeypatch)
    outcomes = {t.number: read(t).outcome for t in study.get_trials()}
    assert "rejected" in outcomes.values() and list(outcomes.values()).count("trained") == 2
    for trial in doc["trials"]:
        outcome = outcomes[trial["number"]]
        assert trial["constraints"], f"trial {trial['number']} carries no constraints for the dashboard"
        if outcome == "rejected":
            assert all(v > 0 for v in trial["constraints"])  # drawn grey, "Infeasible"
        else:
            assert all(v <= 0 for v in trial["constraints"])
        for attr in trial["user_attrs"]:
            assert len(attr["value"]) <= MAX_ATTR, (trial["number"], attr["key"], attr["value"][:80])
        names = {a["filename"] for a in trial["artifacts"]}
        if outcome == "trained":
            assert {f"model-trial{trial['number']}.yaml", f"history-trial{trial['number']}.json"} <= names
        else:
            assert not names


def test_artifacts_round_trip_with_the_export_header(searched: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(searched)
    study = optuna.load_study(study_name="space", storage=URL)
    store = S.existing_store(URL)
    trained = [t for t in study.get_trials() if read(t).outcome == "trained"]
    for t in trained:
        raw = model_yaml_artifact(study, t, store)
        assert raw.startswith("# nas export-best") and f"# trial: {t.number}" in raw  # same header as export
        assert f"# fitness: {t.values[0]:.6f}" in raw
        text = read_model_yaml(study, t, store)
        assert not text.startswith("#") and yaml.safe_load(text)["head"][-1][2] == "Detect"
        assert [h["epoch"] for h in read_history(study, t, store)] == [1]
    out = searched / "best.yaml"
    r = CliRunner().invoke(main, ["export-best", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_text().count("# nas export-best") == 1  # the artifact's header is not repeated


def test_missing_artifact_folder_is_one_clear_line(searched: Path, monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    import shutil

    shutil.copytree(searched / "studies", tmp_path / "studies")
    shutil.rmtree(tmp_path / "studies" / "nas-artifacts")  # the db read where its artifacts are not
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["export-best", "--out", "best.yaml"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "no stored model YAML" in lines[0] and "artifact folder" in lines[0]


def test_the_sampler_still_reads_the_constraints(searched: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from optuna.study._constrained_optimization import _get_feasible_trials

    monkeypatch.chdir(searched)
    study = optuna.load_study(study_name="space", storage=URL)
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    feasible = {t.number for t in _get_feasible_trials(done)}
    rejected = {t.number for t in done if read(t).outcome == "rejected"}
    assert rejected and not rejected & feasible and feasible == {t.number for t in done} - rejected
    for t in done:
        assert set(read(t).constraints) == {"gflops"}  # named, the dashboard's list copy hidden
        assert t.constraints["gflops"] == pytest.approx(read(t).gflops - 10.0)


def test_old_studies_keep_their_attributes() -> None:
    """A study written before the artifacts (history and model_yaml as user attrs) still reads."""
    from optuna.trial import create_trial

    study = optuna.create_study(directions=["maximize", "minimize"])
    history = [{"epoch": 1, "fitness": 0.1}]
    study.add_trial(create_trial(values=[0.1, 1.0], user_attrs={"history": history, "model_yaml": "nc: 2\n"}))
    study.add_trial(create_trial(values=[0.1, 1.0], user_attrs={"reused_from": 0}))
    t0, t1 = study.get_trials()
    assert read_history(study, t0, None) == history and read_model_yaml(study, t0, None) == "nc: 2\n"
    assert read_history(study, t1, None) == history  # a reused score's history is its twin's


def test_the_default_journal_storage_opens_in_optuna_dashboard_as_a_plain_path(tmp_path, monkeypatch):
    """`optuna-dashboard studies/nas.journal` (what the README says to run) finds the study nas made there."""
    from optuna_dashboard._storage_url import get_storage

    monkeypatch.chdir(tmp_path)
    S.create_or_resume("journal:studies/nas.journal", "neck", space_hash="0123456789abcdef", attrs={}, sampler=None)
    storage = get_storage("studies/nas.journal")
    assert isinstance(storage, optuna.storages.JournalStorage)
    assert [s.study_name for s in storage.get_all_studies()] == ["neck"]

"""Results: front table/JSON/plot, picks, export-best and its round-trip check, dashboard, YOLOv5 glue."""

from __future__ import annotations

import copy
import functools
import json
import math
import random
import shutil
import sqlite3
import warnings
from io import BytesIO
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from click.testing import CliRunner
from optuna.trial import TrialState, create_trial

from nas import storage as S
from nas.cli import main
from nas.errors import NasError
from nas.front import pareto
from nas.front.pareto import knee, select_trial
from nas.front.report import front_report
from nas.record import read, save_model_yaml

optuna.logging.set_verbosity(optuna.logging.WARNING)

ROOT = Path(__file__).resolve().parents[1]
STOCK_N = (ROOT / "nas" / "model" / "cfg" / "yolov5n.yaml").read_text()

# yolov5n with SGE inserted after the backbone's P4 C3 (layer 6): consumers of 6 read 7, later indices +1
SGE_YAML = """\
# yolov5n + SGE(groups=8) after the P4 C3
nc: 80
depth_multiple: 0.33
width_multiple: 0.25
anchors:
  - [10,13, 16,30, 33,23]
  - [30,61, 62,45, 59,119]
  - [116,90, 156,198, 373,326]
backbone:
  [[-1, 1, Conv, [64, 6, 2, 2]],
   [-1, 1, Conv, [128, 3, 2]],
   [-1, 3, C3, [128]],
   [-1, 1, Conv, [256, 3, 2]],
   [-1, 6, C3, [256]],
   [-1, 1, Conv, [512, 3, 2]],
   [-1, 9, C3, [512]],
   [-1, 1, SGE, [512, 8]],
   [-1, 1, Conv, [1024, 3, 2]],
   [-1, 3, C3, [1024]],
   [-1, 1, SPPF, [1024, 5]],
  ]
head:
  [[-1, 1, Conv, [512, 1, 1]],
   [-1, 1, nn.Upsample, [None, 2, 'nearest']],
   [[-1, 7], 1, Concat, [1]],
   [-1, 3, C3, [512, False]],
   [-1, 1, Conv, [256, 1, 1]],
   [-1, 1, nn.Upsample, [None, 2, 'nearest']],
   [[-1, 4], 1, Concat, [1]],
   [-1, 3, C3, [256, False]],
   [-1, 1, Conv, [256, 3, 2]],
   [[-1, 15], 1, Concat, [1]],
   [-1, 3, C3, [512, False]],
   [-1, 1, Conv, [512, 3, 2]],
   [[-1, 11], 1, Concat, [1]],
   [-1, 3, C3, [1024, False]],
   [[18, 21, 24], 1, Detect, [nc, anchors]],
  ]
"""
FLA_YAML = SGE_YAML.replace("SGE(groups=8)", "FLA(num_heads=4)").replace(
    "[-1, 1, SGE, [512, 8]]", "[-1, 1, FLA, [512, 4]]"
)

IMGSZ = [256, 256]
BUDGET = 1.0  # GFLOPs at 256x256: yolov5n and its variants fit, yolov5s does not


@functools.cache
def _cost(text: str) -> tuple[int, float]:
    from nas.cost import count
    from nas.model import build_model

    c = count(build_model(yaml.safe_load(text), device="meta"), imgsz=tuple(IMGSZ))
    return int(c.params), float(c.gflops)


def _attrs(text: str, fitness: float, choices: dict[str, str], **extra: Any) -> dict[str, Any]:
    params, gflops = _cost(text)
    return {
        "choices": choices,
        "model_yaml": text,
        "gflops": gflops,
        "params": params,
        "fitness": fitness,
        "mAP50": round(fitness + 0.2, 6),
        "mAP50-95": round((fitness - 0.1 * (fitness + 0.2)) / 0.9, 6),
        "baseline": False,
        "over_budget": False,
        "arch": {"depth_multiple": 0.33, "width_multiple": 0.25, "choices": {}},
        **extra,
    }


NONE = {"p4": "none", "p5": "none"}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A hand-made study: baseline, SGE, FLA (front), a dominated trial, an over-budget yolov5s, a failure,
    and a trial whose YAML lives only in an artifact. Built once; each test gets a copy."""
    folder = tmp_path_factory.mktemp("made")
    url = f"sqlite:///{folder}/studies/nas.db"
    attrs = {
        "space_path": "search_spaces/neck.yaml",
        "base": "yolov5n",
        "imgsz": IMGSZ,
        "budget": {"gflops": BUDGET, "params": None},
        "nas_version": "0.1.0",
        "points": ["p4", "p5"],
        "proxy": {"data": "synthetic", "epochs": 2, "imgsz": 64, "batch": 4, "seed": 0, "synthetic": [16, 8]},
    }
    study = S.create_or_resume(url, "neck", space_hash="0123456789abcdef", attrs=attrs, sampler=None)
    store = S.artifact_store(url)

    def add(values: list[float], user_attrs: dict[str, Any], state: TrialState = TrialState.COMPLETE) -> None:
        params, gflops = user_attrs.get("params"), user_attrs.get("gflops")
        constraints = {"gflops": gflops - BUDGET} if gflops is not None and state == TrialState.COMPLETE else None
        study.add_trial(
            create_trial(
                state=state,
                values=values if state == TrialState.COMPLETE else None,
                user_attrs={k: v for k, v in user_attrs.items() if v is not None},
                constraints=constraints,
            )
        )
        assert params is None or isinstance(params, int)

    base = _attrs(STOCK_N, 0.30, NONE, baseline=True)
    sge = _attrs(SGE_YAML, 0.33, {"p4": "SGE(groups=8)", "p5": "none"})
    fla = _attrs(FLA_YAML, 0.36, {"p4": "FLA(num_heads=4)", "p5": "none"})
    add([0.30, base["gflops"]], base)  # 0 baseline (front)
    add([0.33, sge["gflops"]], sge)  # 1 front
    add([0.25, fla["gflops"]], {**fla, "fitness": 0.25})  # 2 dominated by 3
    add([0.36, fla["gflops"]], fla)  # 3 front
    big = _attrs((ROOT / "nas" / "model" / "cfg" / "yolov5s.yaml").read_text(), 0.0, NONE, over_budget=True)
    add([0.0, big["gflops"]], big)  # 4 over budget
    add(
        [],
        {"choices": {"p4": "BiFormer(topk=4)", "p5": "none"}, "gflops": 0.9, "fail_reason": "NaN loss"},
        TrialState.FAIL,
    )  # 5 failed
    with warnings.catch_warnings():  # 6: YAML only in an artifact (ask/tell like the search)
        warnings.simplefilter("ignore")
        trial = study.ask()
    art = _attrs(SGE_YAML, 0.20, {"p4": "SGE(groups=8)", "p5": "none"})
    for k, v in art.items():
        if k != "model_yaml":
            trial.set_user_attr(k, v)
    trial.set_constraint("gflops", art["gflops"] - BUDGET)
    save_model_yaml(study, trial, SGE_YAML, store)
    study.tell(trial, [0.20, art["gflops"]])
    return {"folder": folder, "base": base, "sge": sge, "fla": fla}


@pytest.fixture
def made(template: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A fresh copy of the hand-made study in studies/ under the test's own working folder."""
    shutil.copytree(template["folder"] / "studies", tmp_path / "studies")
    monkeypatch.chdir(tmp_path)
    url = "sqlite:///studies/nas.db"
    study = S.load_study(url, "neck")
    return {**template, "url": url, "study": study, "store": S.artifact_store(url), "tmp": tmp_path}


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def one_line_error(result: Any) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


# ------------------------------------------------------------------------------------- the front


def test_front_report(made: dict[str, Any]) -> None:
    report = front_report(made["study"], "sqlite:///studies/nas.db")
    assert [r.trial for r in report.front] == [0, 1, 3]
    base, sge, fla = (made[k] for k in ("base", "sge", "fla"))
    r0, r1, r3 = report.front
    assert r0.baseline and r0.d_fitness == 0 and r0.d_gflops == 0 and r0.choices_text == "w0.25 d0.33 (no blocks)"
    assert r1.d_fitness == pytest.approx(0.03) and r1.d_gflops == pytest.approx(sge["gflops"] - base["gflops"])
    assert r1.choices_text == "w0.25 d0.33 p4=SGE(groups=8)" and r1.params == sge["params"]
    assert r1.choices == {"p4": "SGE(groups=8)", "p5": "none"} and r1.width_multiple == 0.25
    assert r1.ties is None and report.audit is None  # no `nas audit` yet: ties unknown
    assert r3.mAP50 == fla["mAP50"] and r3.mAP50_95 == fla["mAP50-95"]
    assert report.counts == {"total": 7, "feasible": 5, "complete": 6, "fail": 1}
    assert report.closest == []
    assert report.budget.gflops == BUDGET


def _brute(study: optuna.Study) -> list[int]:
    ok = [
        t
        for t in study.trials
        if t.state == TrialState.COMPLETE
        and all(v <= 0 for v in t.constraints.values())
        and not t.user_attrs.get("over_budget")
    ]
    return sorted(
        (
            t.number
            for t in ok
            if not any(u.values[0] >= t.values[0] and u.values[1] <= t.values[1] and u.values != t.values for u in ok)
        ),
    )


@pytest.mark.parametrize("seed", range(8))
def test_front_and_picks_match_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    study = optuna.create_study(directions=["maximize", "minimize"], study_name=f"r{seed}")
    for _ in range(rng.choice([3, 30, 90])):
        g = rng.choice([1.0, 2.0]) if rng.random() < 0.2 else rng.uniform(0.5, 6.0)
        f = rng.choice([0.3, 0.4]) if rng.random() < 0.2 else rng.uniform(0.0, 0.6)
        study.add_trial(create_trial(values=[f, g], constraints={"gflops": g - 5.0}))
    report = front_report(study)
    assert sorted(r.trial for r in report.front) == _brute(study)
    feasible = [t for t in study.trials if t.values[1] <= 5.0]
    if not feasible:
        return
    best = select_trial(study)
    assert read(best).objective_fitness == max(t.values[0] for t in feasible)
    for g in (1.0, 2.5, 4.0):
        under = [t for t in feasible if t.values[1] <= g]
        if under:
            got = select_trial(study, max_gflops=g)
            assert read(got).objective_fitness == max(t.values[0] for t in under) and read(got).objective_gflops <= g


def test_knee_against_hand_computation() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    for g, f in [(1.0, 0.1), (2.0, 0.5), (3.0, 0.55), (4.0, 0.6)]:
        study.add_trial(create_trial(values=[f, g]))
    front = pareto.pareto_front(study)
    # normalised: (0,0) (1/3,0.8) (2/3,0.9) (1,1); distance above the diagonal ~ y - x: 0.47 at trial 1
    assert knee(front).number == 1
    assert select_trial(study, pick="knee").number == 1
    assert select_trial(study, pick="fitness").number == 3
    assert knee(front[:2]).number == 1  # two points: the higher fitness
    with pytest.raises(NasError, match="only one of"):
        select_trial(study, trial=1, pick="knee")


def test_pareto_cli_table_json_plot(made: dict[str, Any]) -> None:
    r = run("pareto")
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "Pareto front (3 trials)" in out and "SGE(groups=8)" in out and "(baseline)" in out
    assert "+0.0300" in out and "7 trials" in out and "budget <= 1 GFLOPs" in out

    r = run("pareto", "--study", "neck", "--storage", made["url"], "--json", "--plot", "plots/front.png")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [p["trial"] for p in doc["front"]] == [0, 1, 3]
    assert doc["front"][1]["mAP50-95"] == made["sge"]["mAP50-95"]
    assert doc["baseline"]["trial"] == 0 and doc["budget"] == {"gflops": BUDGET, "params": None}
    png = made["tmp"] / "plots" / "front.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_pareto_without_feasible_trial_shows_closest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    attrs = {"imgsz": IMGSZ, "budget": {"gflops": 0.5, "params": None}, "points": ["p4"]}
    study = S.create_or_resume(None, "tight", space_hash="h", attrs=attrs, sampler=None)
    for g in (0.9, 0.6, 2.0):
        study.add_trial(
            create_trial(
                values=[0.0, g],
                constraints={"gflops": g - 0.5},
                user_attrs={"over_budget": True, "gflops": g, "params": 1000},
            )
        )
    r = run("pareto")
    assert r.exit_code == 0, r.output
    assert "no feasible trial yet" in r.stdout and "closest to the budget" in r.stdout
    assert r.stdout.index("0.600") < r.stdout.index("0.900")
    doc = json.loads(run("pareto", "--json", "--plot", "p.png").stdout)
    assert doc["front"] == [] and [c["trial"] for c in doc["closest_to_budget"]] == [1, 0, 2]
    assert (tmp_path / "p.png").is_file()


# ---------------------------------------------------------------------------------------- export


def expected_export(made: dict[str, Any], trial: int, name: str) -> str:
    sge = made["sge"]
    return (
        "# nas export-best: a YOLOv5 model YAML (ultralytics v7.0 format) found by architecture search\n"
        "# study: neck\n"
        f"# trial: {trial}\n"
        "# choices: w0.25 d0.33 p4=SGE(groups=8)\n"
        "# space_hash: 0123456789abcdef\n"
        "# fitness: 0.330000\n"
        "# mAP50: 0.530000\n"
        f"# mAP50-95: {sge['mAP50-95']:.6f}\n"
        "# GFLOPs: 0.714965\n"
        "# params: 1872173\n"
        "# imgsz: 256x256\n"
        "# proxy behind the scores: data synthetic (16 train / 8 val images), 2 epochs, imgsz 64, batch 4, seed 0\n"
        "# ties: unknown until `nas audit` measures the seed noise\n"
        "# nas_version: 0.1.0 (exported by nas 0.1.0)\n"
        f"# train: nas evaluate {name} | in a YOLOv5 checkout: python -m nas.yolov5_register train.py "
        f"--cfg {name} --data DATA.yaml --weights '' --img 256\n" + SGE_YAML
    )


def test_export_known_trial_matches_hand_written(made: dict[str, Any]) -> None:
    assert made["sge"]["params"] == 1872173  # yolov5n 1872157 + SGE's 2 x 8
    r = run("export-best", "--trial", "1", "--out", "out/best.yaml")
    assert r.exit_code == 0, r.output
    assert "trial 1" in r.stderr and "identical" in r.stderr
    text = (made["tmp"] / "out" / "best.yaml").read_text()
    assert text == expected_export(made, 1, "best.yaml")
    cfg = yaml.safe_load(text)  # still a plain model YAML that nas rebuilds
    from nas.model import build_model

    assert sum(p.numel() for p in build_model(cfg, device="meta").parameters()) == 1872173


def test_export_picks(made: dict[str, Any]) -> None:
    from nas.export import export_best

    study = made["study"]
    assert export_best(study, "a.yaml").trial == 3  # highest fitness on the front
    assert export_best(study, "b.yaml", pick="knee").trial in (0, 1, 3)
    assert export_best(study, "c.yaml", max_gflops=made["base"]["gflops"]).trial == 0
    got = export_best(study, "d.yaml", max_gflops=made["sge"]["gflops"])
    assert got.trial == 1 and got.params == made["sge"]["params"]
    # a trial whose YAML is only an artifact exports through the artifact store
    art = export_best(study, "e.yaml", trial=6, store=made["store"])
    assert art.text.endswith(SGE_YAML)
    with pytest.raises(NasError, match="no stored model YAML"):
        export_best(study, "f.yaml", trial=6)


def test_export_refuses_a_tampered_trial(made: dict[str, Any]) -> None:
    db = made["tmp"] / "studies" / "nas.db"
    tampered = SGE_YAML.replace("[-1, 1, SGE, [512, 8]]", "[-1, 1, SGE, [512, 16]]")  # 16 more params
    with sqlite3.connect(db) as con:
        trial_id = con.execute("SELECT trial_id FROM trials WHERE number = 1").fetchone()[0]
        n = con.execute(
            "UPDATE trial_user_attributes SET value_json = ? WHERE trial_id = ? AND key = 'model_yaml'",
            (json.dumps(tampered), trial_id),
        ).rowcount
        assert n == 1
    r = run("export-best", "--trial", "1", "--out", "t.yaml")
    msg = one_line_error(r)
    assert "trial 1" in msg and "1872189 params" in msg and "recorded 1872173" in msg and "refusing" in msg
    assert not (made["tmp"] / "t.yaml").exists()
    # a changed GFLOPs record (same params) is caught too
    with sqlite3.connect(db) as con:
        con.execute(
            "UPDATE trial_user_attributes SET value_json = ? WHERE trial_id = ? AND key = 'model_yaml'",
            (json.dumps(SGE_YAML), trial_id),
        )
        con.execute(
            "UPDATE trial_user_attributes SET value_json = ? WHERE trial_id = ? AND key = 'gflops'",
            (json.dumps(made["sge"]["gflops"] * (1 + 1e-5)), trial_id),
        )
    assert "refusing" in one_line_error(run("export-best", "--trial", "1", "--out", "t.yaml"))


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--study", "nope"], "no study 'nope' in sqlite:///studies/nas.db; existing: neck"),
        (["--trial", "42"], "has no trial 42 (trials 0..6)"),
        (["--trial", "4"], "trial 4 of study 'neck' is over the budget (gflops +"),
        (["--trial", "5"], "trial 5 of study 'neck' is FAIL: NaN loss"),
        (["--max-gflops", "0.1"], "has <= 0.1 GFLOPs (the lightest has 0.7149)"),
        (["--trial", "1", "--pick", "knee"], "give only one of --trial, --max-gflops and --pick"),
        (["--storage", "sqlite:///elsewhere/x.db"], "no study database at elsewhere/x.db"),
        (["--storage", "postgresql://u:pw@127.0.0.1:1/x"], "is the database server running"),
    ],
)
def test_export_bad_input(made: dict[str, Any], args: list[str], needle: str) -> None:
    msg = one_line_error(run("export-best", *args, "--out", "x.yaml"))
    assert needle in msg
    assert not (made["tmp"] / "x.yaml").exists() and not (made["tmp"] / "elsewhere").exists()


def test_export_unwritable_and_empty(made: dict[str, Any], tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        import os

        if os.access(ro, os.W_OK):  # running as root: permissions are not enforced
            target = "/proc/nas-cannot-write/best.yaml"
        else:
            target = str(ro / "best.yaml")
        assert "cannot write --out" in one_line_error(run("export-best", "--out", target))
    finally:
        ro.chmod(0o700)
    assert "is a folder" in one_line_error(run("export-best", "--out", str(tmp_path)))
    S.create_or_resume(made["url"], "empty", space_hash="h", attrs={"imgsz": IMGSZ}, sampler=None)
    msg = one_line_error(run("export-best", "--study", "empty", "--out", "y.yaml"))
    assert "study 'empty' has no feasible completed trial (0 trials)" in msg
    msg = one_line_error(run("export-best", "--out", "y.yaml"))  # two studies now, no --study
    assert "holds 2 studies (empty, neck)" in msg
    assert "no study 'x'" in one_line_error(run("pareto", "--study", "x"))


# ------------------------------------------------- choices, ties, the plot and export notes (issues 10, 12)


def _audit(noise: float | None) -> dict[str, Any]:
    """The study user attr `nas audit` leaves (nas.record.AuditSummary)."""
    from nas.record import AuditSummary

    return AuditSummary(tau=0.71, tau_low=0.52, tau_high=0.88, rho=0.86, tau_gflops=0.4,
                        noise_sd=None if noise is None else noise / 2, noise=noise, seed_tau=0.6, n_candidates=12,
                        proxy_epochs=2, reference_epochs=8, seeds=2, verdict="v").to_attr()


def test_pareto_json_and_table_carry_width_and_ties(made: dict[str, Any]) -> None:
    doc = json.loads(run("pareto", "--json").stdout)
    row = doc["front"][1]
    assert row["choices_text"] == "w0.25 d0.33 p4=SGE(groups=8)" and row["choices"]["p4"] == "SGE(groups=8)"
    assert (row["width_multiple"], row["depth_multiple"]) == (0.25, 0.33) and row["ties"] is None
    assert doc["noise"] is None and doc["audit"] is None and doc["proxy"]["epochs"] == 2
    out = run("pareto").stdout
    assert "w0.25 d0.33 (no blocks)" in out and "ties: unknown until `nas audit`" in out and "2 epochs" in out

    made["study"].set_user_attr("audit", _audit(0.04))  # front: 0 (0.30), 1 (0.33), 3 (0.36)
    doc = json.loads(run("pareto", "--json").stdout)
    assert doc["noise"] == 0.04 and doc["audit"]["tau"] == 0.71
    assert {r["trial"]: r["ties"] for r in doc["front"]} == {0: [1], 1: [3], 3: []}
    out = run("pareto").stdout
    assert "≈ trial 1" in out and "≈ trial 3" in out and "up to 0.0400 are noise" in out and "τ 0.71" in out


def test_search_summary_prints_the_pareto_table(made: dict[str, Any], capsys: pytest.CaptureFixture) -> None:
    from types import SimpleNamespace

    from nas.commands.search import _report
    from nas.search.options import Summary
    from nas.search.run import summarize

    summary = summarize(made["study"], Summary("neck", made["url"]))
    _report(summary, SimpleNamespace(study=None, storage=None), made["study"])
    got = capsys.readouterr().out
    want = run("pareto").stdout

    def header(text: str) -> list[str]:
        line = next(x for x in text.splitlines() if "┃" in x and "trial" in x)
        return [c.strip() for c in line.split("┃") if c.strip()]

    assert header(got) == header(want) == ["trial", "fitness", "mAP50", "mAP50-95", "GFLOPs", "params", "Δfitness",
                                           "ΔGFLOPs", "choices"]
    assert "w0.25 d0.33 p4=FLA(num_heads=4)" in got and "ties: unknown until `nas audit`" in got


def _xs(ax: Any) -> list[float]:
    """Every x the axes' markers and lines sit at (scatter offsets, line data)."""
    xs = [float(x) for c in ax.collections for x, _ in c.get_offsets()]
    return xs + [float(x) for line in ax.lines for x in line.get_xdata()]


def test_plot_labels_every_scored_trial_and_keeps_rejected_ones_off_the_score_axis(made: dict[str, Any]) -> None:
    from nas.front.plot import front_figure

    study = made["study"]
    study.set_user_attr("audit", _audit(0.04))
    fig = front_figure(study)
    ax, strip = fig.axes
    labels = {int(n) for t in ax.texts for n in t.get_text().split(", ")}
    assert labels == {0, 1, 2, 3, 6}  # every feasible scored trial; 4 is over budget, 5 failed
    over_x = read(study.trials[4]).objective_gflops
    assert over_x > 2 * BUDGET and not any(math.isclose(x, over_x) for x in _xs(ax))
    assert ax.get_ylim()[0] > 0.1  # the lowest score is 0.20: nothing drawn at fitness 0 stretches the axis
    strip_x = _xs(strip)
    assert any(math.isclose(x, over_x) for x in strip_x) and any(math.isclose(x, 0.9) for x in strip_x)
    assert [t.get_text() for t in strip.get_yticklabels()] == ["over budget (not trained) (1)", "failed (1)"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "width 0.25 (5)" in legend and "noise ±0.040 (nas audit)" in legend
    key = "\n".join(t.get_text() for t in fig.texts).splitlines()  # each front trial in the short format
    assert key == ["trial 0: w0.25 d0.33 (no blocks)", "trial 1: w0.25 d0.33 p4=SGE(groups=8)",
                   "trial 3: w0.25 d0.33 p4=FLA(num_heads=4)"]
    ys = {round(float(y), 6) for c in front_figure(study, y="mAP50-95").axes[0].collections
          for _, y in c.get_offsets()}
    assert made["fla"]["mAP50-95"] in ys and 0.36 not in ys

    r = run("pareto", "--plot", "f.png", "--y", "mAP50")
    assert r.exit_code == 0 and (made["tmp"] / "f.png").stat().st_size > 10_000
    assert "'loss' is not one of" in one_line_error(run("pareto", "--plot", "f.png", "--y", "loss"))


def test_plot_labels_stay_readable_when_trials_nearly_coincide(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.text import Text

    from nas.front.plot import front_figure

    monkeypatch.chdir(tmp_path)
    study = S.create_or_resume(None, "crowd", space_hash="h", attrs={"budget": {"gflops": 9.0, "params": None}},
                               sampler=None)
    points = [(0.1, 0.5), (0.9, 3.0)]  # far apart: the rest crowd into a few pixels
    points += [(0.5 + 0.0004 * (i % 3), 1.5 + 0.002 * i) for i in range(8)]  # eight within a marker or two
    points += [(0.52 + 0.01 * i, 1.6 + 0.03 * i) for i in range(5)]  # five a label's width apart
    for f, g in points:
        w = 0.375 if g > 1.6 else 0.25
        study.add_trial(create_trial(values=[f, g], constraints={"gflops": g - 9.0},
                                     user_attrs={"arch": {"width_multiple": w, "depth_multiple": 0.33}}))
    fig = front_figure(study)
    ax = fig.axes[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = list(ax.texts)
    assert sorted(int(n) for t in texts for n in t.get_text().split(", ")) == list(range(len(points)))
    boxes = [Text.get_window_extent(t, renderer) for t in texts]  # the text alone, not its leader line
    overlaps = [(a.get_text(), b.get_text()) for i, (a, p) in enumerate(zip(texts, boxes, strict=True))
                for b, q in zip(texts[i + 1:], boxes[i + 1:], strict=True) if p.overlaps(q)]
    assert overlaps == []
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "width 0.25 (10)" in legend and "width 0.375 (5)" in legend


def test_export_header_states_choices_proxy_audit_and_ties(made: dict[str, Any]) -> None:
    made["study"].set_user_attr("audit", _audit(0.04))
    r = run("export-best", "--out", "best.yaml")  # best fitness: trial 3 (0.36), within 0.04 of trial 1 (0.33)
    assert r.exit_code == 0, r.output
    text = (made["tmp"] / "best.yaml").read_text()
    head = [line for line in text.splitlines() if line.startswith("#")]
    assert "# choices: w0.25 d0.33 p4=FLA(num_heads=4)" in head
    assert ("# proxy behind the scores: data synthetic (16 train / 8 val images), 2 epochs, imgsz 64, batch 4, "
            "seed 0") in head
    assert "# audit: proxy vs 8-epoch reference Kendall tau 0.71 (12 candidates); fitness noise 0.0400" in head
    tie = ("tie: its fitness is within 0.0400 of front trial 1; `nas audit` measured that difference as noise, "
           "so the scores cannot tell them apart")
    assert f"# {tie}" in head and tie in r.stderr
    assert yaml.safe_load(text)["width_multiple"] == 0.25  # the comments leave a plain model YAML

    made["study"].set_user_attr("audit", _audit(0.01))  # a smaller noise: no tie
    r = run("export-best", "--out", "best.yaml")
    no_tie = "no tie: no other front trial scores within 0.0100 (the audit's noise)"
    assert no_tie in r.stderr and f"# {no_tie}" in (made["tmp"] / "best.yaml").read_text()
    assert "# tie:" not in (made["tmp"] / "best.yaml").read_text()


def test_knee_pick_says_whether_it_is_also_the_best() -> None:
    from nas.export import pick_notes

    study = optuna.create_study(directions=["maximize", "minimize"])
    for g, f in [(1.0, 0.1), (2.0, 0.5), (3.0, 0.55), (4.0, 0.6)]:
        study.add_trial(create_trial(values=[f, g]))
    notes = pick_notes(study, study.trials[1], pick="knee")  # the knee (see test_knee_against_hand_computation)
    assert notes.knee_is_best is False and notes.best == 3
    assert notes.lines(1)[0] == "pick knee: trial 1 is the knee of the front; the best fitness is trial 3"
    two = optuna.create_study(directions=["maximize", "minimize"])
    for g, f in [(1.0, 0.1), (2.0, 0.5)]:
        two.add_trial(create_trial(values=[f, g]))
    notes = pick_notes(two, two.trials[1], pick="knee")
    assert notes.knee_is_best is True
    assert notes.lines(1)[0] == "pick knee: trial 1 is the knee of the front and also its best-fitness trial"
    assert pick_notes(two, two.trials[1], pick="fitness").knee_is_best is None


def test_knee_pick_on_the_cli(made: dict[str, Any]) -> None:
    front = pareto.pareto_front(made["study"])
    k, b = knee(front).number, pareto.best(front).number
    r = run("export-best", "--pick", "knee", "--out", "k.yaml")
    assert r.exit_code == 0, r.output
    said = (f"pick knee: trial {k} is the knee of the front and also its best-fitness trial" if k == b else
            f"pick knee: trial {k} is the knee of the front; the best fitness is trial {b}")
    assert said in r.stderr and f"# {said}" in (made["tmp"] / "k.yaml").read_text()


@pytest.mark.parametrize("args", [["--trial", "1", "--max-gflops", "1"], ["--max-gflops", "1", "--pick", "knee"],
                                  ["--trial", "1", "--pick", "fitness"]])
def test_export_picks_exclude_each_other(made: dict[str, Any], args: list[str]) -> None:
    assert one_line_error(run("export-best", *args, "--out", "x.yaml")).endswith(
        "give only one of --trial, --max-gflops and --pick")
    assert not (made["tmp"] / "x.yaml").exists()
    assert "exclude each other" in " ".join(run("export-best", "--help").output.split())


# -------------------------------------------------------------------------------------- dashboard


def wsgi_get(app: Any, path: str, query: str = "") -> tuple[str, dict[str, str], bytes]:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "test",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.input": BytesIO(b""),
        "wsgi.errors": BytesIO(),
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "SERVER_PROTOCOL": "HTTP/1.1",
    }
    got: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        got["status"], got["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))
    return got["status"], got["headers"], body


def test_dashboard_wsgi_serves_attrs_and_artifacts(made: dict[str, Any]) -> None:
    import optuna_dashboard

    storage = S.resolve_storage(made["url"], create=False)
    app = optuna_dashboard.wsgi(storage, artifact_store=made["store"])
    status, _, body = wsgi_get(app, "/api/studies")
    assert status.startswith("200")
    studies = json.loads(body)["study_summaries"]
    (neck,) = [s for s in studies if s["study_name"] == "neck"]
    status, _, body = wsgi_get(app, f"/api/studies/{neck['study_id']}")
    assert status.startswith("200")
    detail = json.loads(body)
    assert {a["key"]: a["value"] for a in detail["user_attrs"]}["space_hash"] == "0123456789abcdef"
    assert detail["objective_names"] == ["fitness", "GFLOPs"]
    trials = {t["number"]: t for t in detail["trials"]}
    assert len(trials) == 7
    attrs1 = {a["key"]: a["value"] for a in trials[1]["user_attrs"]}
    assert attrs1["model_yaml"] == SGE_YAML and json.loads(attrs1["choices"])["p4"] == "SGE(groups=8)"
    (artifact,) = trials[6]["artifacts"]
    assert artifact["filename"] == "model-trial6.yaml"
    status, headers, body = wsgi_get(
        app, f"/artifacts/{neck['study_id']}/{trials[6]['trial_id']}/{artifact['artifact_id']}"
    )
    assert status.startswith("200") and body.decode() == SGE_YAML and headers["Content-Type"] == "text/yaml"


def test_dashboard_command_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert "no study database" in one_line_error(run("dashboard"))
    S.create_or_resume(None, "a", space_hash="h", attrs={}, sampler=None)
    assert "no study 'b'" in one_line_error(run("dashboard", "--study", "b"))
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        msg = one_line_error(run("dashboard", "--port", str(port)))
    assert f"cannot serve on 127.0.0.1:{port}" in msg and "--port" in msg


# --------------------------------------------------------------------------- YOLOv5 registration

# YOLOv5 v7.0's parse_model calling convention, written down for the test: module names are looked up
# in the models.yolo namespace, string args are eval'd there, modules it does not know get `m(*args)`
# and keep the input's width.
FAKE_PARSE_MODEL = """
def parse_model(d, ch):
    anchors, nc, gd, gw = d["anchors"], d["nc"], d["depth_multiple"], d["width_multiple"]
    na = (len(anchors[0]) // 2) if isinstance(anchors, list) else anchors
    no = na * (nc + 5)
    layers, save, c2 = [], [], ch[-1]
    for i, (f, n, m, args) in enumerate(d["backbone"] + d["head"]):
        m = eval(m) if isinstance(m, str) else m
        for j, a in enumerate(args):
            try:
                args[j] = eval(a) if isinstance(a, str) else a
            except NameError:
                pass
        n = max(round(n * gd), 1) if n > 1 else n
        if m in {Conv, C3, SPPF}:
            c1, c2 = ch[f], args[0]
            if c2 != no:
                c2 = make_divisible(c2 * gw, 8)
            args = [c1, c2, *args[1:]]
            if m is C3:
                args.insert(2, n)
                n = 1
        elif m is Concat:
            c2 = sum(ch[x] for x in f)
        elif m is Detect:
            args.append([ch[x] for x in f])
        else:
            c2 = ch[f]
        m_ = nn.Sequential(*(m(*args) for _ in range(n))) if n > 1 else m(*args)
        m_.i, m_.f = i, f
        save.extend(x % i for x in ([f] if isinstance(f, int) else f) if x != -1)
        layers.append(m_)
        if i == 0:
            ch = []
        ch.append(c2)
    return nn.Sequential(*layers), sorted(save)
"""


def fake_yolo_module() -> Any:
    import types

    from torch import nn

    from nas.model import Detect, make_divisible
    from nas.model.common import C3, SPPF, Concat, Conv

    mod = types.ModuleType("models.yolo")
    mod.__dict__.update(nn=nn, Conv=Conv, C3=C3, SPPF=SPPF, Concat=Concat, Detect=Detect, make_divisible=make_divisible)
    exec(FAKE_PARSE_MODEL, mod.__dict__)
    return mod


def test_yolov5_registration_builds_the_same_blocks() -> None:
    import torch

    import blocks
    from nas.model import build_model
    from nas.yolov5_register import register

    cfg = yaml.safe_load(FLA_YAML.replace("[-1, 1, FLA, [512, 4]]", "[-1, 1, SpatialGroupEnhance, [512]]"))
    cfg["head"][13] = [-1, 1, "GE", [1024, 2]]  # a second block: GE replaces the P5 C3 (layer 24)
    yolo = fake_yolo_module()
    with pytest.raises(NameError):
        yolo.parse_model(copy.deepcopy(cfg), [3])  # unregistered: YOLOv5 cannot build nas blocks
    names = register(yolo)
    assert {"SGE", "GE", "FLA", "BiFormer", "FocalModulation", "SpatialGroupEnhance"} <= set(names)
    assert register(yolo) == names  # idempotent: parse_model is wrapped once
    layers, save = yolo.parse_model(copy.deepcopy(cfg), [3])
    ours = build_model(copy.deepcopy(cfg))
    assert sum(p.numel() for p in layers.parameters()) == sum(p.numel() for p in ours.parameters())
    assert save == ours.save
    for i in (7, 24):
        assert type(layers[i]) is type(ours.model[i]) and isinstance(layers[i], (blocks.SGE, blocks.GE))
        assert [p.shape for p in layers[i].parameters()] == [p.shape for p in ours.model[i].parameters()]
    # width 0.25: the blocks see 128 channels, not the YAML's 512; a blog SpatialGroupEnhance has groups = c1
    assert layers[7].channels == ours.model[7].channels == 128 and layers[7].groups == 128
    # and the YOLOv5-built layers run: forward like YOLOv5's _forward_once
    x, y = torch.zeros(1, 3, 64, 64), []
    for m in layers:
        if m.f != -1:
            x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
        x = m(x)
        y.append(x if m.i in save else None)
    assert [tuple(t.shape) for t in x] == [(1, 3, 8, 8, 85), (1, 3, 4, 4, 85), (1, 3, 2, 2, 85)]


def test_yolov5_registration_rejects_width_changing_rows() -> None:
    from nas.yolov5_register import prepare_cfg

    cfg = yaml.safe_load(STOCK_N)
    cfg["backbone"][9] = [-1, 1, "FocalModulation", [512]]  # SPPF (256 wide at 0.25) -> 128 wide
    cfg["head"][0] = [-1, 1, "Conv", [512, 1, 1]]
    with pytest.raises(NasError, match="changes the width 256 -> 128"):
        prepare_cfg(cfg)
    same = yaml.safe_load(STOCK_N)
    same["backbone"][9] = [-1, 1, "FocalModulation", [1024, 2, 3]]  # the usual SPPF swap keeps the width
    row = prepare_cfg(same)["backbone"][9]
    assert row[2] == "FocalModulation" and row[3][0] == 256 and row[3][1]["focal_level"] == 2


# ------------------------------------------------- the guarded writer (issue 22): only new or regular files


def _special(kind: str, path: Path) -> Path:
    """Make a FIFO, a socket, a folder or (as root) a character device at `path`."""
    import os
    import socket
    import stat

    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        s.close()
    elif kind == "device":
        if os.geteuid() != 0:
            pytest.skip("making a device node needs root")
        try:
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 7))  # the same device as /dev/full
        except PermissionError:
            pytest.skip("this container may not make device nodes")
    return path


def _kind(path: Path) -> int:
    import stat

    return stat.S_IFMT(path.lstat().st_mode)


@pytest.mark.parametrize("kind", ["fifo", "socket", "folder", "device"])
def test_export_and_plot_refuse_what_is_not_a_regular_file(made: dict[str, Any], tmp_path: Path, kind: str) -> None:
    target = _special(kind, tmp_path / f"target-{kind}.yaml")
    before = _kind(target)
    msg = one_line_error(run("export-best", "--out", str(target)))
    assert str(target) in msg and "nas writes only a new file or over a regular file" in msg
    assert _kind(target) == before  # still the FIFO / socket / folder / device it was
    png = _special(kind, tmp_path / f"front-{kind}.png")
    msg = one_line_error(run("pareto", "--plot", str(png)))
    assert str(png) in msg
    assert _kind(png) == _kind(target)
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name or p.name.startswith(".target")]


def test_a_failing_write_leaves_the_previous_file_intact(made: dict[str, Any], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    out = tmp_path / "best.yaml"
    assert run("export-best", "--out", str(out)).exit_code == 0
    old = out.read_bytes()
    out.chmod(0o444)  # a previous export the user keeps; the write must not need to open it

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)  # the data could not reach the disk
    msg = one_line_error(run("export-best", "--out", str(out), "--pick", "knee"))
    assert "No space left on device" in msg and "the previous file (if any) is unchanged" in msg
    assert out.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".best")] == []
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    png = tmp_path / "front.png"
    png.write_bytes(b"old picture")
    import matplotlib.figure

    def broken(self: Any, *a: Any, **k: Any) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", broken)
    msg = one_line_error(run("pareto", "--plot", str(png)))
    assert "Read-only file system" in msg and png.read_bytes() == b"old picture"


def test_guarded_writer_follows_a_link_to_a_regular_file_and_creates_missing_folders(tmp_path: Path) -> None:
    from nas.files import write_text

    real = tmp_path / "real.yaml"
    real.write_text("old")
    link = tmp_path / "link.yaml"
    link.symlink_to(real)
    assert write_text(link, "new") == real
    assert link.is_symlink() and real.read_text() == "new"
    deep = tmp_path / "a" / "b" / "c.yaml"
    assert write_text(deep, "x") == deep and deep.read_text() == "x"
    (tmp_path / "file").write_text("")
    with pytest.raises(NasError, match="is not a folder"):
        write_text(tmp_path / "file" / "c.yaml", "x")


def test_written_files_get_the_mode_open_would_give(tmp_path: Path) -> None:
    """The guarded writer's temp file is 0600 (mkstemp); the file it becomes has the umask's mode, or keeps the
    mode of the file it replaces."""
    import os

    from nas.files import write_text

    old = os.umask(0o022)
    try:
        new = write_text(tmp_path / "new.yaml", "x")
        kept = tmp_path / "kept.yaml"
        kept.write_text("old")
        kept.chmod(0o640)
        write_text(kept, "new")
    finally:
        os.umask(old)
    assert new.stat().st_mode & 0o777 == 0o644
    assert kept.stat().st_mode & 0o777 == 0o640 and kept.read_text() == "new"

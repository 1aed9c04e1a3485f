"""The CLI: help, profile tables and JSON, one-line errors with exit code 2."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from nas.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_help_lists_commands():
    r = run("--help")
    assert r.exit_code == 0
    assert "profile" in r.output


def test_profile_json():
    r = run("profile", "yolov5s", "--imgsz", "640x384", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["params"] == 7235389
    assert doc["imgsz"] == [640, 384]
    assert doc["layers"] == 25 and len(doc["per_layer"]) == 25
    assert abs(doc["gflops"] - 16.4335616 * 384 / 640) < 1e-5
    assert abs(sum(layer["gflops"] for layer in doc["per_layer"]) - doc["gflops"]) < 1e-4
    assert doc["per_layer"][24]["from"] == [17, 20, 23]


def test_profile_table():
    r = run("profile", "yolov5n", "--imgsz", "320", "--nc", "3")
    assert r.exit_code == 0, r.output
    assert "Detect" in r.output and "SPPF" in r.output and "YOLOv5/thop" in r.output
    assert "nc=3" in r.output


def test_profile_bad_input_is_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"nc": 80, "depth_multiple": 1, "width_multiple": 1, "anchors": 3,
                                   "backbone": [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, "Frobnicate", [3]]],
                                   "head": [[-1, 1, "Conv", [16, 1, 1]]]}))
    for args in (["profile", str(bad)], ["profile", "yolov5s", "--imgsz", "641"], ["profile", "nosuch.yaml"]):
        r = run(*args)
        assert r.exit_code == 2, r.output
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ")
        assert "Traceback" not in r.output


def _one_error_line(r) -> str:
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Usage:" not in r.output and "Traceback" not in r.output
    return lines[0]


def test_click_usage_errors_are_one_error_line():
    assert "--trials" in _one_error_line(run("search", "--trails", "3"))  # unknown option, with the close match
    assert "'foo' is not one of" in _one_error_line(run("search", "--space", "neck", "--budget", "1gflops",
                                                        "--sampler", "foo"))
    assert "0 is not in the range" in _one_error_line(run("evaluate", "yolov5n", "--epochs", "0"))
    assert "No such command 'nope'" in _one_error_line(run("nope"))
    assert "No such option '--nope'" in _one_error_line(run("--nope"))


def test_one_device_parser_everywhere():
    import torch

    from nas.device import parse_device

    assert parse_device("cpu") == "cpu" and parse_device(" CPU ") == "cpu"
    for bad in ("gpu", "cuda:x", "cuda1", "mps"):
        assert "is unknown; use cpu, cuda or cuda:N" in _one_error_line(run("evaluate", "yolov5n", "--device", bad))
    if not torch.cuda.is_available():  # cuda:N is a device name evaluate accepts like search: only CUDA is missing
        for cmd in (["evaluate", "yolov5n"], ["search", "--space", "neck", "--budget", "10gflops"]):
            assert "CUDA is not available" in _one_error_line(run(*cmd, "--device", "cuda:1"))


def test_shipped_space_by_name_in_every_command():
    from nas.space import SHIPPED, load_space, resolve_space_path, shipped_spaces

    assert shipped_spaces() == ["backbone", "full", "neck", "sppf"]
    assert SHIPPED.parent.name == "nas"  # inside the package: a plain `pip install .` ships them
    for name in ("neck", "neck.yaml", "search_spaces/neck.yaml"):
        assert load_space(name).hash == load_space(SHIPPED / "neck.yaml").hash
        assert resolve_space_path(name).endswith("neck.yaml")
    by_name = run("space", "neck", "--json")
    by_path = run("space", "search_spaces/neck.yaml", "--json")
    assert by_name.exit_code == 0 and json.loads(by_name.stdout)["hash"] == json.loads(by_path.stdout)["hash"]
    assert "nosuch" in _one_error_line(run("space", "nosuch"))


def test_blocks_never_suggest_values_out_of_the_range_they_state():
    import re

    line = _one_error_line(run("blocks", "--channels", "3"))
    m = re.search(r"between (\d+) and (\d+)(?: such as ([\d, ]+))?", line)
    assert m, line
    lo, hi = int(m.group(1)), int(m.group(2))
    assert all(lo <= int(v) <= hi for v in re.findall(r"\d+", m.group(3) or ""))


def test_results_commands_refuse_a_study_nas_did_not_make(tmp_path, monkeypatch):
    import optuna

    monkeypatch.chdir(tmp_path)
    (tmp_path / "studies").mkdir()
    url = "sqlite:///studies/other.db"
    study = optuna.create_study(study_name="other", storage=url, directions=["maximize", "minimize"])
    study.add_trial(optuna.trial.create_trial(values=[0.5, 3.0]))
    for cmd in (["pareto"], ["export-best", "--out", "x.yaml"], ["dashboard", "--study", "other", "--port", "1"]):
        line = _one_error_line(run(*cmd, "--storage", url))
        assert "'other'" in line and "not made by `nas search`" in line, line
    assert not (tmp_path / "x.yaml").exists()


# ------------------------------------------------------------------------------------------ live panel


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _scripted(sizes, epochs=4, per_gflop=1.5, steps=4, rejected_after=None):
    """Run TimeLeft over a scripted search (epoch time = per_gflop x GFLOPs); the estimate at every step."""
    from nas.search.live import TimeLeft

    clock = _Clock()
    est = TimeLeft(trials=len(sizes), epochs=epochs, clock=clock)
    out = []  # (trial index, seconds left or None)
    for i, g in enumerate(sizes):
        est.trial_start(g)
        for _ in range(epochs):
            for _ in range(steps):
                clock.now += per_gflop * g / steps
                out.append((i, est.seconds(trained=i)))
            est.epoch_end()
        est.trial_end(trained=True)
        clock.now += 0.2  # counting and building the next candidate
        if rejected_after == i:  # an over-budget candidate: never started, nothing changes
            out.append((-1, est.seconds(trained=i + 1)))
    out.append((len(sizes), est.seconds(trained=len(sizes))))
    return out, clock.now


def test_time_left_counts_down_on_a_scripted_search():
    out, total = _scripted([2.0, 2.0, 2.0], rejected_after=0)
    assert all(v is None for _, v in out[:3])  # nothing timed before the first epoch ends
    values = [v for _, v in out if v is not None]
    assert all(b <= a for a, b in zip(values, values[1:], strict=False)) and values[-1] == 0
    for trial in range(3):  # while a candidate trains the estimate never holds still
        inside = [v for i, v in out if i == trial and v is not None]
        assert all(b < a for a, b in zip(inside, inside[1:], strict=False)), (trial, inside)
    first_at = 1.5 * 2.0 * 5 / 4  # the first estimate comes after one epoch and a quarter
    assert values[0] == pytest.approx(total - first_at, abs=1.0)  # the true time left, less the short gaps


def test_time_left_follows_candidate_size():
    out, _ = _scripted([1.0, 3.0, 2.0])
    for trial in range(3):  # within a trial the clock only runs down; sizes change it only at a trial start
        values = [v for i, v in out if i == trial and v is not None]
        assert all(b < a for a, b in zip(values, values[1:], strict=False)), (trial, values)


def test_plain_lines_show_proxy_epochs_and_the_rejected_size():
    import io

    import optuna
    from rich.console import Console

    from nas.budget import Budget
    from nas.record import TrialRecord
    from nas.search.live import Display
    from nas.search.options import SearchOptions

    buf = io.StringIO()
    opts = SearchOptions(space="neck", budget=Budget(gflops=10.0), trials=2, epochs=2, imgsz=64, batch=4)
    display = Display(Console(file=buf, width=200), opts, optuna.create_study(study_name="s", directions=[
        "maximize", "minimize"]), "sqlite:///studies/nas.db")
    with display.live():
        display.trial_start(0, "w0.25 d0.33 P5=SGE(groups=8)", 4.5)
        display.epoch_end(0, {"epoch": 1, "loss": 5.25})
        display.epoch_end(0, {"epoch": 2, "loss": 4.5, "mAP50": 0.1, "mAP50-95": 0.05, "fitness": 0.055})
        display.trial_end(0, "trained", TrialRecord(number=0, fitness=0.055))
        display.trial_start(1, "w0.5 d0.33 (no blocks)", 16.4)
        display.trial_end(1, "rejected", TrialRecord(number=1, gflops=16.4))
    text = buf.getvalue()
    assert "synthetic (512 train / 64 val images), 2 epochs, imgsz 64, batch 4" in text
    assert "epoch 1/2: loss 5.2500\n" in text  # an epoch without a score shows no made-up mAP
    assert "epoch 2/2: loss 4.5000 mAP50 0.1000 mAP50-95 0.0500 fitness 0.0550" in text
    assert "trial 1: w0.5 d0.33 (no blocks) -> rejected (16.40 GFLOPs, budget <= 10 GFLOPs: never trained)" in text
    assert "left" in text.splitlines()[-3] and "after the first" not in text.splitlines()[-3]  # once timed


# ------------------------------------------------------------------------------------------------ help

WORKFLOW = ["profile", "blocks", "space", "transfer", "evaluate", "search", "audit", "pareto", "export-best",
            "dashboard"]


def test_help_lists_commands_in_workflow_order_with_whole_descriptions():
    out = run("--help").output
    section = out.split("Commands:")[1]
    listed = [line.split()[0] for line in section.splitlines() if line.startswith("  ") and line[2] != " "]
    assert listed == WORKFLOW
    assert "..." not in section  # click would cut a long description short


def test_every_command_has_an_example_and_shared_options_read_the_same():
    import re

    option_lines: dict[str, set[str]] = {"--storage": set(), "--device": set()}
    for name in WORKFLOW:
        r = CliRunner().invoke(main, [name, "--help"], terminal_width=200)
        assert r.exit_code == 0, name
        assert "Example" in r.output, f"nas {name} --help has no example"
        for option in option_lines:
            found = re.search(rf"^\s+({option} \S+)\s+(.*)$", r.output, flags=re.M)
            if found:
                option_lines[option].add(f"{found.group(1)} {found.group(2)}")
    assert len(option_lines["--storage"]) == 1 and next(iter(option_lines["--storage"])).startswith("--storage URL")
    assert len(option_lines["--device"]) == 1 and "cuda:N" in next(iter(option_lines["--device"]))
    sampler = CliRunner().invoke(main, ["search", "--help"], terminal_width=200).output
    assert all(f"{name} =" in sampler for name in ("tpe", "nsga2", "gp", "random"))  # each choice described


def test_search_cli_defaults_are_the_search_options_defaults():
    """The proxy defaults chosen by the fidelity bench live in SearchOptions; the CLI states the same ones."""
    from dataclasses import fields

    from nas.commands.search import command
    from nas.search.options import SearchOptions
    from nas.weights.base import FINETUNE_PROXY, proxy_settings

    defaults = {f.name: f.default for f in fields(SearchOptions)}
    cli = {p.name: p.default for p in command.params}
    for name in ("batch", "eta", "precision", "sampler", "seed", "early_stop", "trials"):
        assert cli[name] == defaults[name], name
    # --epochs/--imgsz left out mean the scratch proxy, or the fine-tuning proxy with --weights
    scratch = (defaults["epochs"], defaults["imgsz"])
    assert proxy_settings(None, cli["epochs"], cli["imgsz"], *scratch) == scratch
    finetune = proxy_settings("base.pt", cli["epochs"], cli["imgsz"], *scratch)
    assert finetune == (FINETUNE_PROXY.epochs, FINETUNE_PROXY.imgsz) != scratch
    # nas evaluate scores a model with the same proxy, so that it reproduces a default search's trial
    from nas.commands.evaluate import command as evaluate

    cli = {p.name: p.default for p in evaluate.params}
    for name in ("batch", "precision", "seed"):
        assert cli[name] == defaults[name], name
    assert proxy_settings(None, cli["epochs"], cli["imgsz"], *scratch) == scratch


def test_evaluate_reproduces_a_search_trial_on_the_builtin_data(monkeypatch, tmp_path):
    """The synthetic set `nas evaluate` trains on is the search's (same image counts), so the baseline trial of
    a search and `nas evaluate yolov5n` with the same settings give the same fitness."""
    from nas.budget import Budget
    from nas.front.pareto import scored_trials
    from nas.record import read
    from nas.search.options import SearchOptions
    from nas.search.run import run_search

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NAS_CACHE", str(tmp_path / "cache"))
    opts = SearchOptions(space="neck", budget=Budget(gflops=10.0), trials=1, epochs=1, imgsz=64, batch=8,
                         synthetic_train=512, synthetic_val=64)
    run_search(opts)
    import optuna

    from nas.storage import resolve_storage

    study = optuna.load_study(study_name="neck", storage=resolve_storage(None))
    base = next(read(t) for t in scored_trials(study) if read(t).baseline)
    r = run("evaluate", "yolov5n", "--epochs", "1", "--imgsz", "64", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["fitness"] == pytest.approx(base.fitness, abs=1e-6)


def test_help_and_export_best_help_import_no_onnx_package():
    """--onnx is optional: the CLI, its help and export-best's / profile's help load without onnx."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys\nfrom nas.cli import main\n"
            "for args in (['--help'], ['export-best', '--help'], ['profile', '--help']):\n"
            "    try:\n        main(args)\n    except SystemExit as e:\n        assert e.code == 0, e.code\n"
            "print('LOADED', sorted(m for m in sys.modules if m.split('.')[0] in "
            "('onnx', 'onnxruntime', 'onnxscript')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert "--onnx FILE.onnx" in out.stdout and "--onnx-exporter" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "LOADED []"


def test_profile_onnx_without_onnxruntime_is_one_error_line_and_writes_nothing(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed: `import onnxruntime` fails
    msg = _one_error_line(run("profile", "yolov5n", "--onnx", str(tmp_path / "n.onnx")))
    assert msg == "error: --onnx needs onnx and onnxruntime: pip install 'nas[onnx]'"
    assert list(tmp_path.iterdir()) == []

"""The CLI: help, profile tables and JSON, one-line errors with exit code 2."""

from __future__ import annotations

import json

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

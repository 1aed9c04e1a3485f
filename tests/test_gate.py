"""The budget gate: table predictions agree with the meta-device count; rejections never build a model."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

import nas.cost
import nas.cost.gate
from nas.budget import Budget
from nas.cost.gate import CostMismatch, GateResult, gate, predict
from nas.errors import NasError
from nas.space import load_space, render, sample

SPACES = Path(__file__).resolve().parents[1] / "search_spaces"
NO_LIMIT = Budget(gflops=1e9)
optuna.logging.set_verbosity(optuna.logging.WARNING)


def random_archs(space, n, seed=0):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return [sample(space, study.ask()) for _ in range(n)]


@pytest.mark.parametrize("name", sorted(p.stem for p in SPACES.glob("*.yaml")))
def test_gate_agrees_with_the_full_count_on_every_shipped_space(name):
    space = load_space(SPACES / f"{name}.yaml")
    for k, arch in enumerate(random_archs(space, 20, seed=7)):
        nc = (None, 7)[k % 2]  # the base's 80 classes, and the data's classes overriding them
        cfg = render(space, arch)
        if nc is not None:
            cfg["nc"] = nc
        result = gate(space, arch, NO_LIMIT, cfg=cfg)  # a full count on the meta device
        assert result.counted and not result.over_budget
        params, gflops = predict(space, arch, nc)  # the table alone
        assert result.params == params and result.gflops == pytest.approx(gflops, rel=1e-12)


def test_nc_changes_the_prediction_as_much_as_the_count():
    space = load_space(SPACES / "neck.yaml")
    arch = random_archs(space, 1)[0]
    p80, g80 = predict(space, arch)
    p3, g3 = predict(space, arch, nc=3)
    cfg = render(space, arch)
    real80 = nas.cost.count(cfg, space.imgsz)
    real3 = nas.cost.count(dict(cfg, nc=3), space.imgsz)
    assert p80 - p3 == real80.params - real3.params > 0  # Detect's output convs: na x (nc + 5) channels each
    assert g80 - g3 == pytest.approx(real80.gflops - real3.gflops, rel=1e-9)


def test_over_budget_candidate_is_rejected_without_counting(monkeypatch):
    space = load_space(SPACES / "neck.yaml")
    arch = random_archs(space, 1, seed=3)[0]
    params, gflops = predict(space, arch, nc=3)  # builds the cost tables before the counter is disabled

    def no_count(*_a, **_kw):
        raise AssertionError("the meta-device count ran for a rejected candidate")

    monkeypatch.setattr(nas.cost.gate, "count", no_count)
    result = gate(space, arch, Budget(gflops=gflops / 2), nc=3)
    assert result == GateResult(params, gflops, over_budget=True, counted=False)
    assert gate(space, arch, Budget(params=params - 1), nc=3).over_budget
    with pytest.raises(AssertionError, match="count ran"):  # the same candidate within budget is counted
        gate(space, arch, Budget(gflops=gflops * 2), nc=3)


def test_a_disagreement_stops_loudly_with_both_numbers(monkeypatch):
    space = load_space(SPACES / "neck.yaml")
    arch = random_archs(space, 1, seed=4)[0]
    cfg = render(space, arch)
    real = nas.cost.count(cfg, space.imgsz)
    params, gflops = predict(space, arch)
    for wrong in (nas.cost.Cost(real.params + 1, real.flops, real.imgsz),
                  nas.cost.Cost(real.params, real.flops * (1 + 1e-6), real.imgsz)):
        monkeypatch.setattr(nas.cost.gate, "count", lambda *_a, w=wrong, **_kw: w)
        with pytest.raises(CostMismatch) as e:
            gate(space, arch, NO_LIMIT, cfg=cfg)
        assert not isinstance(e.value, NasError)  # a bug in nas, not a user error
        assert str(params) in str(e.value) and str(wrong.params) in str(e.value)
        assert f"{gflops:.9g}" in str(e.value) and f"{wrong.gflops:.9g}" in str(e.value)


def test_gate_renders_with_nc_when_given_no_cfg(monkeypatch):
    space = load_space(SPACES / "sppf.yaml")
    arch = random_archs(space, 1, seed=5)[0]
    seen = []
    real_count = nas.cost.count
    monkeypatch.setattr(nas.cost.gate, "count", lambda cfg, imgsz: seen.append(cfg["nc"]) or real_count(cfg, imgsz))
    result = gate(space, arch, NO_LIMIT, nc=2)
    assert result.counted and seen[-1] == 2
    assert (result.params, result.gflops) == (predict(space, arch, 2)[0], pytest.approx(predict(space, arch, 2)[1]))

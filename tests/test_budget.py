"""`--budget` parsing: every accepted form, combinations and the one-line errors."""

from __future__ import annotations

import pytest

from nas.budget import Budget, parse_budget
from nas.errors import NasError


@pytest.mark.parametrize(
    "text, gflops",
    [
        ("10gflops", 10.0),
        ("10 GFLOPs", 10.0),
        ("10GFLOP", 10.0),
        ("10 G FLOPs", 10.0),
        ("800MFLOPs", 0.8),
        ("800 mflops", 0.8),
        ("1.2e10flops", 12.0),
        ("1.2E10 FLOPs", 12.0),
        ("1.5TFLOPs", 1500.0),
        ("2.5gflops", 2.5),
        (".5 gflops", 0.5),
        ("  16.5  GFLOPs  ", 16.5),
        ("500kflops", 0.0005),
    ],
)
def test_flops_forms(text: str, gflops: float) -> None:
    budget = parse_budget([text])
    assert budget.params is None
    assert budget.gflops == pytest.approx(gflops, rel=1e-12)


@pytest.mark.parametrize(
    "text, params",
    [
        ("5M-params", 5_000_000),
        ("5M params", 5_000_000),
        ("5m params", 5_000_000),
        ("5e6params", 5_000_000),
        ("500k-params", 500_000),
        ("500K PARAMS", 500_000),
        ("1.9M-param", 1_900_000),
        ("1234567 params", 1_234_567),
        ("2.5M parameters", 2_500_000),
        ("1B params", 1_000_000_000),
    ],
)
def test_params_forms(text: str, params: int) -> None:
    budget = parse_budget([text])
    assert budget.gflops is None
    assert budget.params == params
    assert isinstance(budget.params, int)


def test_combined_and_empty() -> None:
    assert parse_budget(["10gflops", "5M-params"]) == Budget(gflops=10.0, params=5_000_000)
    assert parse_budget(["5M-params", "10gflops"]) == Budget(gflops=10.0, params=5_000_000)
    assert parse_budget([]) == Budget()
    assert parse_budget(None) == Budget()
    assert parse_budget("8gflops") == Budget(gflops=8.0)
    assert not Budget()
    assert Budget(gflops=1.0)


@pytest.mark.parametrize(
    "texts",
    [
        ["10"],
        ["10g"],
        ["gflops"],
        ["ten gflops"],
        ["10 gigaflops"],
        ["10 GFLOPs/s"],
        ["-5gflops"],
        ["0gflops"],
        ["0 params"],
        ["5x params"],
        ["5M"],
        ["1e400 flops"],
        ["10gflops 5M params"],
        [""],
        ["nan gflops"],
    ],
)
def test_bad_forms(texts: list[str]) -> None:
    with pytest.raises(NasError) as info:
        parse_budget(texts)
    message = str(info.value)
    assert "\n" not in message
    assert repr(texts[0]) in message
    assert "10gflops" in message and "5M-params" in message  # the accepted forms


def test_two_of_a_kind() -> None:
    with pytest.raises(NasError, match="two FLOPs limits.*'10gflops'.*'800MFLOPs'"):
        parse_budget(["10gflops", "800MFLOPs"])
    with pytest.raises(NasError, match="two params limits"):
        parse_budget(["5M params", "500k-params"])


def test_violations_and_describe() -> None:
    both = Budget(gflops=10.0, params=5_000_000)
    assert both.violations(12.5, 4_000_000) == {"gflops": 2.5, "params": -1_000_000.0}
    assert both.exceeded(12.5, 4_000_000)
    assert not both.exceeded(10.0, 5_000_000)  # at the limit is feasible
    assert Budget(params=100).violations(3.0, 150) == {"params": 50.0}
    assert Budget().violations(3.0, 150) == {}
    assert both.describe() == "<= 10 GFLOPs, <= 5M params"
    assert Budget().describe() == "no budget"
    assert Budget(gflops=0.8).describe() == "<= 0.8 GFLOPs"


def test_attr_round_trip() -> None:
    both = Budget(gflops=10.0, params=5_000_000)
    assert both.to_attr() == {"gflops": 10.0, "params": 5_000_000}
    assert Budget.from_attr(both.to_attr()) == both
    assert Budget.from_attr(None) == Budget()
    assert Budget.from_attr({"gflops": None, "params": None}) == Budget()


@pytest.mark.parametrize("text, ms", [("80ms", 80.0), ("80 ms", 80.0), ("0.08s", 80.0), ("1.5 sec", 1500.0),
                                      ("800us", 0.8), ("800µs", 0.8), ("800 μs", 0.8), ("8e1ms", 80.0),
                                      ("120 MS", 120.0)])
def test_latency_forms(text: str, ms: float) -> None:
    budget = parse_budget(text)
    assert budget.latency_ms == pytest.approx(ms) and budget.gflops is None and budget.params is None
    assert budget and budget.describe() == f"<= {budget.latency_ms:g} ms"
    assert Budget.from_attr(budget.to_attr()) == budget


def test_latency_combines_with_flops_and_is_a_constraint() -> None:
    budget = parse_budget(["10gflops", "80ms"])
    assert budget.to_attr() == {"gflops": 10.0, "params": None, "latency_ms": 80.0}
    assert budget.violations(9.0, 100, 90.0) == {"gflops": -1.0, "latency_ms": 10.0}
    assert budget.exceeded(9.0, 100, 90.0) and not budget.exceeded(9.0, 100, 70.0)
    with pytest.raises(ValueError, match="latency"):  # a latency budget without a latency is a bug, not a pass
        budget.violations(9.0, 100)
    assert parse_budget("10gflops").to_attr() == {"gflops": 10.0, "params": None}  # unchanged without a time


@pytest.mark.parametrize("text, message", [("80parsecs", "not a budget"), ("-5ms", "positive time"),
                                           ("0ms", "positive time"), ("0 s", "positive time"),
                                           ("ms", "not a budget")])
def test_bad_latency_budgets_are_one_line(text: str, message: str) -> None:
    with pytest.raises(NasError, match=message) as e:
        parse_budget(text)
    assert "\n" not in str(e.value) and "80ms" in str(e.value)


def test_two_latency_limits_are_refused() -> None:
    with pytest.raises(NasError, match="two latency limits"):
        parse_budget(["80ms", "0.1s"])


"""Measured latency: one model (`measure`), and a space's per-slot table that predicts any candidate
(`measure_table`, `predict`). Method and its limits: nas/latency/measure.py and docs/CONTRACTS.md "Latency"."""

from nas.latency.measure import RUNTIMES, THRESHOLD, Latency, check_runtime, measure, measure_many
from nas.latency.table import (
    LatencyTable,
    MultipleLatency,
    SlotLatency,
    SpaceLatency,
    latency_key,
    measure_table,
    predict,
    space_latencies,
)

__all__ = ["RUNTIMES", "THRESHOLD", "Latency", "LatencyTable", "MultipleLatency", "SlotLatency", "SpaceLatency",
           "check_runtime", "latency_key", "measure", "measure_many", "measure_table", "predict", "space_latencies"]

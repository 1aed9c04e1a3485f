"""Reading a study's results: the front and its picks (`pareto`), the report as plain data (`report`), the rich
table (`table`) and the picture (`plot`)."""

from nas.front.pareto import (
    AXES,
    PICKS,
    best,
    closest_to_budget,
    cost_value,
    count_outcomes,
    is_feasible,
    knee,
    pareto_front,
    select_trial,
    tied_with,
    ties,
)
from nas.front.report import FrontReport, TrialRow, front_report, noise_line, proxy_text, trial_row

__all__ = ["AXES", "PICKS", "FrontReport", "TrialRow", "best", "closest_to_budget", "cost_value", "count_outcomes",
           "front_report", "is_feasible", "knee", "noise_line", "pareto_front", "proxy_text", "select_trial",
           "tied_with", "ties", "trial_row"]

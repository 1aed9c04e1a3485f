"""The search: options.py (SearchOptions, Progress, Summary), objective.py (one candidate per call), run.py
(prepare, open_study, run_search), data.py (the proxy data and its checks), rungs.py (successive halving),
samplers.py (--sampler), workers.py (--workers: extra processes), live.py (the live view).

Import from the modules; the package itself imports nothing, so `nas.search.samplers` or `nas.search.workers`
load without the trainer.
"""

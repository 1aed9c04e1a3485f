"""`nas search-worker` (hidden): one extra process of `nas search --workers K`, started by it with the search's
options as one JSON document (nas.search.options.SearchOptions.to_json)."""

from __future__ import annotations

import os
import sys

import click


@click.command("search-worker", hidden=True)
@click.argument("options", metavar="OPTIONS_JSON")
def command(options: str) -> None:
    """Work on the study of a running `nas search --workers K`: same options, no display, one line per trial.

    \b
    Example (nas search starts it; nas.search.workers.worker_command):
      nas search-worker '{"space": "search_spaces/neck.yaml", "budget": {"gflops": 10.0, "params": null}, ...}'
    """
    from nas.cost.gate import CostMismatch
    from nas.export import header
    from nas.search.data import resolve_search_data
    from nas.search.options import Progress, SearchOptions
    from nas.search.run import open_study, prepare, run_search
    from nas.search.workers import set_threads

    opts = SearchOptions.from_json(options)
    space = prepare(opts)
    set_threads(1)
    opts.workers = 1
    opts.sampler_seed_offset = os.getpid()

    def end(number, outcome, record) -> None:
        fitness = "" if record.fitness is None else record.fitness
        click.echo(f"[worker {os.getpid()}] trial {number}: {outcome} {fitness}", err=True)

    try:
        data_spec = resolve_search_data(opts, space)
        study = open_study(space, opts)
        run_search(opts, Progress(trial_end=end), space=space, study=study, data_spec=data_spec, header=header)
    except CostMismatch as e:  # a bug in nas, not a user error: exit 3, as `nas search` does
        click.echo(f"internal error: {e}", err=True)
        sys.exit(3)
    except KeyboardInterrupt:
        sys.exit(130)

"""`nas dashboard`: optuna-dashboard on a study storage, with the trials' model YAML artifacts."""

from __future__ import annotations

import click

from nas.commands._options import STORAGE_HELP


@click.command("dashboard")
@click.option("--study", "study_name", default=None, help="Check this study exists and print its page.")
@click.option("--storage", default=None, metavar="URL", help=STORAGE_HELP)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True, help="Port to listen on.")
@click.option(
    "--artifact-dir",
    default=None,
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Artifact folder [default: <db stem>-artifacts/ beside a SQLite or journal file, else studies/artifacts/].",
)
def command(
    study_name: str | None, storage: str | None, host: str, port: int, artifact_dir: str | None
) -> None:
    """Browse a storage's studies in optuna-dashboard: trials, Pareto front, artifacts, audit note.

    Rejected (over-budget) candidates show as infeasible; each trained trial has its model YAML (headed like
    export-best output) and per-epoch history as artifacts; a finished `nas audit` adds a study note with its
    verdict and plot. Serves until Ctrl-C.

    \b
    Example:
      nas dashboard --port 8080
    """
    import optuna_dashboard

    from nas.errors import NasError
    from nas.storage import artifact_store, load_nas_study, mask_url, resolve_storage

    optuna_storage = resolve_storage(storage, create=False)
    page = f"http://{host}:{port}/dashboard"
    if study_name is not None:
        study = load_nas_study(optuna_storage, study_name)  # says so when nas did not make it
        page += f"/studies/{study._study_id}"
    store = artifact_store(storage, artifact_dir)
    _check_port(host, port)
    click.echo(
        f"optuna-dashboard on {mask_url(storage)} at {page} (artifacts: {store._base_path}); Ctrl-C stops it",
        err=True,
    )
    try:
        optuna_dashboard.run_server(optuna_storage, host=host, port=port, artifact_store=store)
    except OSError as e:
        raise NasError(
            f"cannot serve on {host}:{port}: {e.strerror or e}; choose another --port or --host"
        ) from None
    except KeyboardInterrupt:
        pass


def _check_port(host: str, port: int) -> None:
    """NasError now, before any banner, when host:port cannot be listened on."""
    import socket

    from nas.errors import NasError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise NasError(f"cannot serve on {host}:{port}: {e.strerror or e}; check --host") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as e:
            raise NasError(
                f"cannot serve on {host}:{port}: {e.strerror or e}; choose another --port or --host"
            ) from None

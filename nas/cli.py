"""The `nas` command line: a click group; each command lives in nas/commands/<name>.py."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from typing import NoReturn

import click

import nas.commands as pkg
from nas import __version__
from nas.errors import NasError

WORKFLOW = ["profile", "blocks", "space", "transfer", "evaluate", "search", "audit", "pareto", "export-best",
            "dashboard"]


class NasGroup(click.Group):
    """Turns a NasError or a click usage error (unknown option, bad choice, out of range) anywhere below into
    one line on stderr and exit code 2, no traceback and no usage block."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Commands in the order of the workflow, not alphabetically; any others after them."""
        names = super().list_commands(ctx)
        return [n for n in WORKFLOW if n in names] + sorted(n for n in names if n not in WORKFLOW)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Each command with its whole one-line description (click cuts them at the terminal width)."""
        rows = [(name, self.commands[name].get_short_help_str(limit=1000)) for name in self.list_commands(ctx)
                if not self.commands[name].hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def make_context(self, info_name, args, parent=None, **extra) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as e:
            _usage_error(e)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except NasError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(e.exit_code)
        except click.UsageError as e:
            _usage_error(e)


def _usage_error(e: click.UsageError) -> NoReturn:
    """`error: nas search: No such option: --trails (Possible options: --trials); see nas search --help`."""
    where = e.ctx.command_path if e.ctx is not None else "nas"
    message = " ".join(e.format_message().split()).rstrip(".")
    click.echo(f"error: {where}: {message}; see {where} --help", err=True)
    sys.exit(2)


@click.group(cls=NasGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="nas")
def main() -> None:
    """Neural architecture search for YOLOv5 detectors.

    Search where attention blocks (SGE, GE, FLA, BiFormer, FocalModulation) go in a YOLOv5 model,
    under a GFLOPs budget, scored by short proxy training runs and kept in an SQL-backed Optuna study.
    The commands below are listed in the order of the workflow; `nas COMMAND --help` shows an example each.

    \b
    Example:
      nas space neck && nas search --space neck --budget 10gflops && nas pareto && nas export-best --out best.yaml
    """


def _register() -> None:
    """Attach every command module found in nas.commands (each defines a click command named `command`)."""
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"nas.commands.{info.name}")
        main.add_command(module.command)


_register()


if __name__ == "__main__":
    main()

"""The rich consoles every command prints with: full width on a terminal, a fixed width on a pipe or log."""

from __future__ import annotations

from rich.console import Console


def console(stderr: bool = False, width: int = 120) -> Console:
    """A console on stdout (or stderr): the terminal's width, else `width` columns with soft wrapping."""
    terminal = Console(stderr=stderr).is_terminal
    return Console(stderr=stderr, width=None if terminal else width, soft_wrap=not terminal)


__all__ = ["console"]

"""Warnings said once per command: a command or a run reads many files and months, and a warning
about the setup (a development key, a stray file) is one fact, not one per file."""

from __future__ import annotations

import logging

_said: set[tuple[str, str]] = set()


def new_command() -> None:
    """Start a command (the CLI's and the run's entry points): what was said before may be said again."""
    _said.clear()


def warn_once(log: logging.Logger, message: str) -> None:
    """Log `message` as a warning the first time this command says it to `log`."""
    if (log.name, message) not in _said:
        _said.add((log.name, message))
        log.warning(message)

"""Warnings said once per process: a command or a run reads many files and months, and a warning
about the setup (a development key, a stray file) is one fact, not one per file."""

from __future__ import annotations

import logging

_said: set[tuple[str, str]] = set()


def warn_once(log: logging.Logger, message: str) -> None:
    """Log `message` as a warning the first time this process says it to `log`."""
    if (log.name, message) not in _said:
        _said.add((log.name, message))
        log.warning(message)

"""Named pause points, and what a killed run leaves behind.

A pause point is a place in a run where a test can hold the process, to kill it at a chosen event
(a stage's first month written, a model version staged, a snapshot staged) rather than after a
guessed delay: off unless the setting VALUETIER_PAUSE_AT names it, never set in use. A held run
writes a marker file, `paused-at-<point>` beside the warehouse, and waits to be killed.

A run killed while it stages a model version or a published snapshot leaves files named with its
process id; the next run removes those whose process is gone (process_alive).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

PAUSE_POINTS = ("ingestion", "dbt build", "training", "scoring", "publishing")


def pause_marker(folder: Path, point: str) -> Path:
    return folder / f"paused-at-{point.replace(' ', '-')}"


def pause_point(point: str, pause_at: str | None, folder: Path) -> None:
    """Hold the run here, for good, when `pause_at` names this point (a test then kills it)."""
    if pause_at != point:
        return
    pause_marker(folder, point).write_text(f"{os.getpid()}\n")
    while True:
        time.sleep(60)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another account's process: alive
    return True


def abandoned(folder: Path, pattern: str) -> list[Path]:
    """The entries of `folder` that `pattern` (a regex with one group, the process id) names for a
    process that is no longer running: what a killed run staged and never renamed."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = re.fullmatch(pattern, path.name)
        if match and int(match.group(1)) != os.getpid() and not process_alive(int(match.group(1))):
            found.append(path)
    return sorted(found)

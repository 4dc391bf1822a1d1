"""Operator acceptances of learned-check failures: "this month's transactions volume is low because
of the branch closures; load it". Stored as JSON beside the quality results (one file, reviewable,
kept across warehouse rebuilds), read by every validation, shown in the check metadata and the run
summary.

Only the checks whose bounds are learned from history (volume, distribution) and the quarantine
share can be accepted, month by month. Contract checks (schema, types, keys, references) never are.
"""

from __future__ import annotations

import getpass
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from valuetier.core.months import parse_month

ACCEPTABLE_PREFIXES = ("volume", "distribution:", "quarantine_share")
LEARNED_PREFIXES = ("volume", "distribution:")  # warnings, not errors, while a history is first loaded


class AcceptanceError(ValueError):
    """An acceptance that cannot be recorded; the message says why."""


@dataclass(frozen=True)
class Acceptance:
    suite: str
    check: str
    month: str
    reason: str
    accepted_by: str
    accepted_at: str

    @property
    def name(self) -> str:
        return f"{self.suite}.{self.check}"


def is_learned(check: str) -> bool:
    return check.startswith(LEARNED_PREFIXES)


def accept_command(suite: str, check: str, month: str) -> str:
    """The command that accepts a failed check for a month (named in every failure message)."""
    return f'valuetier quality accept --month {month} --check {suite}.{check} --reason "..."'


def acceptances_path(quality_dir: Path) -> Path:
    return quality_dir / "acceptances.json"


def load_acceptances(quality_dir: Path) -> list[Acceptance]:
    path = acceptances_path(quality_dir)
    if not path.exists():
        return []
    try:
        return [Acceptance(**entry) for entry in json.loads(path.read_text())]
    except (json.JSONDecodeError, TypeError) as exc:
        raise AcceptanceError(f"{path}: not a list of acceptances ({exc})") from exc


def accepted_months(quality_dir: Path, suite: str) -> dict[str, dict[str, Acceptance]]:
    """{check: {month: acceptance}} of one suite."""
    found: dict[str, dict[str, Acceptance]] = {}
    for acceptance in load_acceptances(quality_dir):
        if acceptance.suite == suite:
            found.setdefault(acceptance.check, {})[acceptance.month] = acceptance
    return found


def accept(
    quality_dir: Path, name: str, month: str, reason: str, known_checks: dict[str, list[str]], by: str | None = None
) -> Acceptance:
    """Record that `name` (suite.check) may fail for `month`; `known_checks` maps each suite to its
    table-level checks. Accepting the same check and month again replaces the reason."""
    suite, _, check = name.partition(".")
    if suite not in known_checks:
        raise AcceptanceError(f"no expectation suite {suite!r}; suites: {', '.join(sorted(known_checks))}")
    acceptable = [c for c in known_checks[suite] if c.startswith(ACCEPTABLE_PREFIXES)]
    if check not in acceptable:
        raise AcceptanceError(
            f"{name} cannot be accepted: only learned checks and the quarantine share can be "
            f"({', '.join(f'{suite}.{c}' for c in acceptable) or 'none in this suite'}); contract checks never"
        )
    try:
        parse_month(month)
    except ValueError as exc:
        raise AcceptanceError(str(exc)) from exc
    if not reason.strip():
        raise AcceptanceError("an acceptance needs a reason")
    acceptance = Acceptance(
        suite,
        check,
        month,
        reason.strip(),
        by or getpass.getuser(),
        datetime.now(UTC).isoformat(timespec="seconds"),
    )
    kept = [a for a in load_acceptances(quality_dir) if (a.suite, a.check, a.month) != (suite, check, month)]
    path = acceptances_path(quality_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = sorted([*kept, acceptance], key=lambda a: (a.month, a.suite, a.check))
    path.write_text(json.dumps([asdict(a) for a in entries], indent=1) + "\n")
    return acceptance

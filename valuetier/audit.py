"""An offline audit of the lock: every pinned package of requirements.lock checked against a
snapshot of the Python Packaging Authority's advisory database (github.com/pypa/advisory-database,
OSV format), kept in the repository (security/advisories.json) so the audit needs no network, as
CI here and most banks' build machines have none to the vulnerability services pip-audit asks.

    python -m valuetier.audit                        # what make test runs: exit 1 on a finding
    python -m valuetier.audit refresh PATH [COMMIT]  # a new snapshot from a checkout of the database

A finding that the project has judged not to apply is listed with its reason in
security/accepted.json; it is still printed. The snapshot is only as recent as its date (printed
first): where the network allows, `pip-audit -r requirements.lock --no-deps --disable-pip` asks
the live service as well.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from valuetier.core.settings import REPO_ROOT

# The main lock and the optional Spark stack's (`make spark`): both are installed by `make test`.
LOCKS = (REPO_ROOT / "requirements.lock", REPO_ROOT / "requirements-spark.lock")
SNAPSHOT = REPO_ROOT / "security" / "advisories.json"
ACCEPTED = REPO_ROOT / "security" / "accepted.json"


def pinned(locks: tuple[Path, ...] = LOCKS) -> dict[str, str]:
    """name -> version of every `name==version` line of the locks."""
    pins = {}
    for lock in locks:
        for line in lock.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if "==" in line:
                name, version = line.split("==", 1)
                pins[canonicalize_name(name.split("[")[0])] = version.split(";")[0].strip()
    return pins


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def affects(affected: dict, version: str) -> bool:
    """Whether an OSV `affected` entry covers the version: listed, or inside an ECOSYSTEM range."""
    if version in affected.get("versions", []):
        return True
    v = _version(version)
    if v is None:
        return False
    for rng in affected.get("ranges", []):
        if rng.get("type") != "ECOSYSTEM":
            continue
        inside = False
        for event in rng.get("events", []):  # in order: introduced, then fixed or last_affected
            if "introduced" in event:
                start = event["introduced"]
                inside = start == "0" or (_version(start) is not None and v >= _version(start))
            elif "fixed" in event and inside and _version(event["fixed"]) is not None:
                inside = v < _version(event["fixed"])
                if inside:
                    return True
            elif "last_affected" in event and inside and _version(event["last_affected"]) is not None:
                inside = v <= _version(event["last_affected"])
                if inside:
                    return True
        if inside:  # introduced and never fixed
            return True
    return False


@dataclass(frozen=True)
class Finding:
    id: str
    package: str
    version: str
    fixed: tuple[str, ...]
    summary: str
    aliases: tuple[str, ...]
    accepted: str | None = None  # the project's reason, from security/accepted.json


def audit(pins: dict[str, str], advisories: list[dict], accepted: dict[str, str] | None = None) -> list[Finding]:
    accepted = accepted or {}
    findings = []
    for advisory in advisories:
        for affected in advisory.get("affected", []):
            package = canonicalize_name(affected["package"]["name"])
            if package in pins and affects(affected, pins[package]):
                fixed = tuple(
                    e["fixed"] for r in affected.get("ranges", []) for e in r.get("events", []) if "fixed" in e
                )
                findings.append(
                    Finding(
                        advisory["id"],
                        package,
                        pins[package],
                        fixed,
                        (advisory.get("summary") or advisory.get("details", "")).strip().splitlines()[0][:160],
                        tuple(advisory.get("aliases", [])),
                        accepted.get(advisory["id"]),
                    )
                )
    return sorted(findings, key=lambda f: (f.package, f.id))


def refresh(database: Path, pins: dict[str, str], commit: str = "HEAD") -> dict:
    """The advisories of the locked packages, from a git checkout (or bare mirror) of the database."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=database, capture_output=True, text=True, check=True).stdout

    revision = git("rev-parse", commit).strip()
    date = git("show", "-s", "--format=%cI", revision).strip()
    paths = [
        p for p in git("ls-tree", "-r", "--name-only", revision, "vulns").splitlines() if p.endswith(".yaml")
    ]  # fmt: skip
    wanted = [p for p in paths if canonicalize_name(p.split("/")[1]) in pins]
    advisories = []
    for path in wanted:
        entry = yaml.safe_load(git("show", f"{revision}:{path}"))
        entry.pop("references", None)
        advisories.append(entry)
    return {
        "source": "https://github.com/pypa/advisory-database",
        "commit": revision,
        "date": date,
        "packages_in_lock": len(pins),
        "advisories": sorted(advisories, key=lambda a: a["id"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m valuetier.audit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    again = sub.add_parser("refresh", help="write a new snapshot from a checkout of pypa/advisory-database")
    again.add_argument("database", type=Path)
    again.add_argument("commit", nargs="?", default="HEAD")
    args = parser.parse_args(argv)
    pins = pinned()
    if args.command == "refresh":
        snapshot = refresh(args.database, pins, args.commit)
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(json.dumps(snapshot, indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")
        print(f"{len(snapshot['advisories'])} advisories of the locked packages, {snapshot['date']}: {SNAPSHOT}")
        return 0
    snapshot = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    accepted = json.loads(ACCEPTED.read_text(encoding="utf-8")) if ACCEPTED.exists() else {}
    findings = audit(pins, snapshot["advisories"], accepted)
    locks = " + ".join(lock.name for lock in LOCKS)
    print(
        f"audit of {locks}: {len(pins)} pinned packages against {len(snapshot['advisories'])} advisories of "
        f"pypa/advisory-database {snapshot['commit'][:10]} ({snapshot['date'][:10]}; newer advisories are not known)"
    )
    for f in findings:
        verdict = f"accepted: {f.accepted}" if f.accepted else f"fixed in {', '.join(f.fixed) or 'no release yet'}"
        print(f"  {f.package}=={f.version}  {f.id} ({', '.join(f.aliases) or 'no alias'})  {verdict}\n    {f.summary}")
    open_findings = [f for f in findings if not f.accepted]
    print(f"{len(open_findings)} open findings, {len(findings) - len(open_findings)} accepted")
    return 1 if open_findings else 0


if __name__ == "__main__":
    sys.exit(main())

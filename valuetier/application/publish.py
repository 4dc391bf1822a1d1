"""Publish what BI reads, atomically, outside the warehouse: a BI tool or notebook reads the published
marts while the pipeline writes the warehouse (which DuckDB locks for its one writing process).

Layout of the published folder (Settings.published_dir):

    versions/000007/<mart>/month=YYYY-MM/data.parquet   one immutable snapshot per publish
    versions/000007.fingerprints.json                   the revised marts' rows, fingerprinted by month
    current -> versions/000007                          the latest snapshot, for Parquet readers
    valuetier.duckdb                                    read-only: one view per mart over `current`'s files

A publish writes a new snapshot (the months it changes, the other months hard-linked from the previous
snapshot; of the evaluation marts, whose earlier months a run revises, the months whose rows differ from
the previous snapshot's, told apart by a fingerprint of each month's rows kept with the snapshot), then
a new DuckDB file whose views list that snapshot's files, then swaps the file and the `current` link,
each with one rename. A failure before the swap leaves the previous snapshot published and removes the
half-written one. A reader sees the snapshot it opened, whole: a DuckDB connection
keeps its file, whose views name files that stay until KEEP_VERSIONS later publishes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from valuetier.core.leftovers import abandoned
from valuetier.core.months import parse_month
from valuetier.core.settings import DuckDBLimits

DUCKDB_FILE = "valuetier.duckdb"
CURRENT = "current"
VERSIONS = "versions"
KEEP_VERSIONS = 3  # snapshots kept besides the current one, for readers that opened an earlier file
FINGERPRINTS = ".fingerprints.json"  # beside a snapshot's folder: `current` holds the marts alone


@dataclass(frozen=True)
class Mart:
    schema: str
    table: str
    # A month's run also re-evaluates earlier months (the evaluation: outcome windows close later), and
    # may not yet have rows for its own. Each month is written only where its rows changed, found by
    # comparing a fingerprint of the month's rows with the previous snapshot's: rewriting every month
    # made publishing grow with the history (1.9 s after 12 months, 3.8 s after 36, at 100,000 customers).
    revises_earlier_months: bool = False
    # A month without rows is legitimate (a quiet month has no alerts): published as no rows, not refused.
    may_lack_months: bool = False

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"


# What BI reads, under the same schema and table names as in the warehouse.
PUBLISHED_MARTS = (
    Mart("marts", "customer_tiers"),
    Mart("marts", "customer_indicators_monthly"),
    *(
        Mart("evaluation", table, revises_earlier_months=True)
        for table in (
            "eval_tier_outcomes_monthly",
            "eval_retention_monthly",
            "eval_campaign_conversion_monthly",
            "eval_campaign_ab_monthly",
            "eval_tier_migration_monthly",
            "eval_tier_jumps",
            "eval_tier_stability_monthly",
            "eval_tier_fairness_monthly",
            "eval_campaign_targeting_monthly",
            "eval_satisfaction_monthly",
            "eval_model_backtest_monthly",
            "eval_backtest_tiers_monthly",
            "eval_calibration_deciles_monthly",
        )
    ),
    Mart("marts", "crm_actions"),
    Mart("monitoring", "alerts", may_lack_months=True),
    Mart("monitoring", "drift_monthly", may_lack_months=True),  # none before a reference month exists
)


@dataclass(frozen=True)
class PublishResult:
    version: str
    duckdb_file: Path
    parquet_dir: Path
    rows: dict[str, int]  # mart -> rows in the snapshot
    months_written: dict[str, list[str]]  # mart -> months written by this publish (the rest linked)
    seconds: float
    pruned: list[str] = field(default_factory=list)


class PublishError(RuntimeError):
    pass


def current_version(published_dir: Path) -> Path | None:
    link = published_dir / CURRENT
    return (published_dir / os.readlink(link)) if link.is_symlink() else None


def _month_key(month_start) -> str:
    return month_start.strftime("%Y-%m")


def _month_file(version_dir: Path, mart: Mart, month: str) -> Path:
    return version_dir / mart.name / f"month={month}" / "data.parquet"


def publish(
    warehouse: Path,
    published_dir: Path,
    months: list[str],
    marts: tuple[Mart, ...] = PUBLISHED_MARTS,
    limits: DuckDBLimits | None = None,
    keep_versions: int = KEEP_VERSIONS,
    staged: Callable[[], None] = lambda: None,
) -> PublishResult:
    """Publish `months` (YYYY-MM) of every mart, with the other months of the previous snapshot as they
    were. `staged` is called when the snapshot and the DuckDB file are staged, before the swap."""
    started = time.perf_counter()
    for month in months:
        parse_month(month)  # a clear error for a bad key
    published_dir.mkdir(parents=True, exist_ok=True)
    previous = current_version(published_dir)
    versions = published_dir / VERSIONS
    versions.mkdir(exist_ok=True)
    remove_abandoned(published_dir, previous)
    number = 1 + max((int(p.name) for p in versions.iterdir() if p.name.isdigit()), default=0)
    version_dir = versions / f"{number:06d}"
    staged_file = published_dir / f".{DUCKDB_FILE}.{os.getpid()}.tmp"
    limits = limits or DuckDBLimits.for_warehouse(warehouse)
    try:
        con = duckdb.connect(str(staged_file), config=limits.config())
        try:
            con.execute(f"ATTACH '{warehouse}' AS warehouse (READ_ONLY)")
            rows, written, new_files, fingerprints = {}, {}, [], {}
            earlier_fingerprints = _read_fingerprints(previous)
            for mart in marts:
                if mart.revises_earlier_months:
                    fingerprints[mart.name] = _month_fingerprints(con, mart)
                changed = _changed_months(mart, months, fingerprints, earlier_fingerprints)
                files, written[mart.name] = _snapshot_mart(con, mart, months, changed, previous, version_dir)
                rows[mart.name] = _create_view(con, mart, files)
                new_files += [_month_file(version_dir, mart, month) for month in written[mart.name]]
            new_files.append(_write_fingerprints(version_dir, fingerprints))
            con.execute("DETACH warehouse")
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.chmod(staged_file, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)  # BI has no write path
        _fsync_snapshot(version_dir, new_files)
        staged()
        # The swap: one rename each. The DuckDB file goes first; `current` follows it.
        os.replace(staged_file, published_dir / DUCKDB_FILE)
        staged_link = published_dir / f".{CURRENT}.{os.getpid()}.tmp"
        staged_link.unlink(missing_ok=True)
        os.symlink(Path(VERSIONS) / version_dir.name, staged_link)
        os.replace(staged_link, published_dir / CURRENT)
        _fsync_dir(published_dir)
    except BaseException:
        staged_file.unlink(missing_ok=True)
        shutil.rmtree(version_dir, ignore_errors=True)
        _fingerprints_file(version_dir).unlink(missing_ok=True)
        raise
    pruned = _prune(versions, keep=keep_versions, current=version_dir)
    return PublishResult(
        version=version_dir.name,
        duckdb_file=published_dir / DUCKDB_FILE,
        parquet_dir=published_dir / CURRENT,
        rows=rows,
        months_written=written,
        seconds=time.perf_counter() - started,
        pruned=pruned,
    )


def remove_abandoned(published_dir: Path, current: Path | None) -> list[Path]:
    """What a publish killed before its swap left: its staged DuckDB file and link (named with its
    process id, gone) and its snapshot, numbered after the current one, which no reader ever saw."""
    left = abandoned(published_dir, rf"\.(?:{re.escape(DUCKDB_FILE)}|{re.escape(CURRENT)})\.(\d+)\.tmp")
    versions = published_dir / VERSIONS
    newest = int(current.name) if current is not None else 0
    left += sorted(p for p in versions.iterdir() if _number(p) is not None and _number(p) > newest)
    for path in left:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    return left


def _month_fingerprints(con: duckdb.DuckDBPyConnection, mart: Mart) -> dict[str, str]:
    """Each month's row count and the sum of its rows' hashes, after the mart's column names and types:
    equal for the same rows in any order (a month's file is written sorted, so the same rows make the
    same file), different where a column or any value of any row differs, but for a 64-bit hash
    collision. DuckDB's hash is the same in every process of one DuckDB version; an upgrade that
    changes it only makes a publish rewrite every month once."""
    described = con.execute(f"DESCRIBE warehouse.{mart.name}").fetchall()
    columns = hashlib.sha256(",".join(f"{name} {kind}" for name, kind, *_ in described).encode()).hexdigest()[:16]
    return {
        _month_key(month): f"{columns}:{rows}:{total}"
        for month, rows, total in con.execute(
            f"SELECT month_start, count(*), sum(hash(*COLUMNS(*))) FROM warehouse.{mart.name} GROUP BY month_start"
        ).fetchall()
    }


def _changed_months(
    mart: Mart, months: list[str], fingerprints: dict[str, dict[str, str]], earlier: dict[str, dict[str, str]]
) -> set[str]:
    """The months this publish writes, where the previous snapshot has the month: the run's months, and
    for a revised mart also each month whose fingerprint differs from the previous snapshot's (or that
    the previous snapshot did not fingerprint)."""
    if not mart.revises_earlier_months:
        return set(months)
    now, before = fingerprints[mart.name], earlier.get(mart.name, {})
    return set(months) | {month for month, fingerprint in now.items() if before.get(month) != fingerprint}


def _fingerprints_file(version_dir: Path) -> Path:
    return version_dir.with_name(version_dir.name + FINGERPRINTS)


def _number(path: Path) -> int | None:
    """The snapshot a folder or fingerprints file of `versions` belongs to."""
    number = path.name.removesuffix(FINGERPRINTS)
    return int(number) if number.isdigit() else None


def _read_fingerprints(version_dir: Path | None) -> dict[str, dict[str, str]]:
    """The previous snapshot's fingerprints; none where it has no readable file (published before
    fingerprints were kept, or the file damaged): every month is then written, never a stale one kept."""
    path = _fingerprints_file(version_dir) if version_dir is not None else None
    try:
        return json.loads(path.read_text()) if path is not None else {}
    except (OSError, ValueError):
        return {}


def _write_fingerprints(version_dir: Path, fingerprints: dict[str, dict[str, str]]) -> Path:
    path = _fingerprints_file(version_dir)
    path.write_text(json.dumps(fingerprints, indent=1, sort_keys=True) + "\n")
    return path


def _snapshot_mart(
    con: duckdb.DuckDBPyConnection,
    mart: Mart,
    months: list[str],
    changed: set[str],
    previous: Path | None,
    version_dir: Path,
) -> tuple[list[Path], list[str]]:
    """The mart's month files in the new snapshot: written from the warehouse where this publish changes
    the month (or the previous snapshot lacks it), hard-linked from the previous snapshot elsewhere."""
    present = [
        _month_key(m)
        for (m,) in con.execute(
            f"SELECT DISTINCT month_start FROM warehouse.{mart.name} ORDER BY month_start"
        ).fetchall()
    ]
    missing = sorted(set(months) - set(present))
    if missing and not (mart.revises_earlier_months or mart.may_lack_months):
        raise PublishError(f"{mart.name} has no rows for {', '.join(missing)}: nothing to publish for them")
    files, written = [], []
    for month in present:
        target = _month_file(version_dir, mart, month)
        target.parent.mkdir(parents=True, exist_ok=True)
        earlier = _month_file(previous, mart, month) if previous else None
        if month in changed or earlier is None or not earlier.exists():
            start = parse_month(month).isoformat()
            con.execute(
                f"COPY (SELECT * FROM warehouse.{mart.name} WHERE month_start = DATE '{start}' ORDER BY ALL) "
                f"TO '{target}' (FORMAT parquet)"
            )
            written.append(month)
        else:
            os.link(earlier, target)
        files.append(target)
    return files, written


def _create_view(con: duckdb.DuckDBPyConnection, mart: Mart, files: list[Path]) -> int:
    """A view over exactly the snapshot's files (no glob: a reader never sees another snapshot's files);
    an empty table with the mart's columns where the mart has no rows yet."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {mart.schema}")
    if not files:
        con.execute(f"CREATE TABLE {mart.name} AS SELECT * FROM warehouse.{mart.name} LIMIT 0")
        return 0
    listed = ", ".join(f"'{f}'" for f in files)
    con.execute(f"CREATE VIEW {mart.name} AS SELECT * FROM read_parquet([{listed}])")
    return con.execute(f"SELECT count(*) FROM {mart.name}").fetchone()[0]


def _fsync_snapshot(version_dir: Path, written: list[Path]) -> None:
    """On disk before the swap: the files this publish wrote (the linked ones already were, in an
    earlier publish) and every folder's entries, links included."""
    for path in written:
        with open(path, "rb") as f:
            os.fsync(f.fileno())
    for folder in sorted((p for p in version_dir.rglob("*") if p.is_dir()), reverse=True):
        _fsync_dir(folder)
    _fsync_dir(version_dir)
    _fsync_dir(version_dir.parent)  # the snapshot's folder and its fingerprints file


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prune(versions: Path, keep: int, current: Path) -> list[str]:
    """Remove snapshots older than the `keep` before the current one, and any a failed publish left."""
    numbered = sorted(p for p in versions.iterdir() if p.name.isdigit() and p <= current)
    old = [p for p in numbered if p != current][:-keep] if keep else [p for p in numbered if p != current]
    for path in old:
        shutil.rmtree(path)
        _fingerprints_file(path).unlink(missing_ok=True)
    return [p.name for p in old]


def read_published(published_dir: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the published DuckDB file, as a BI tool or notebook opens it."""
    path = published_dir / DUCKDB_FILE
    if not path.exists():
        raise PublishError(f"nothing is published yet: {path} does not exist")
    return duckdb.connect(str(path), read_only=True)

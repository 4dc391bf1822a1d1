"""Publish what BI reads, atomically, outside the warehouse: a BI tool or notebook reads the published
marts while the pipeline writes the warehouse (which DuckDB locks for its one writing process).

Layout of the published folder (Settings.published_dir):

    versions/000007/<mart>/month=YYYY-MM/data.parquet   one immutable snapshot per publish
    current -> versions/000007                          the latest snapshot, for Parquet readers
    valuetier.duckdb                                    read-only: one view per mart over `current`'s files

A publish writes a new snapshot (the months it changes, the other months hard-linked from the previous
snapshot), then a new DuckDB file whose views list that snapshot's files, then swaps the file and the
`current` link, each with one rename. A failure before the swap leaves the previous snapshot published
and removes the half-written one. A reader sees the snapshot it opened, whole: a DuckDB connection
keeps its file, whose views name files that stay until KEEP_VERSIONS later publishes.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class Mart:
    schema: str
    table: str
    # Small marts are rewritten whole on every publish: a month's run also re-evaluates earlier months.
    rewrite_all: bool = False
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
        Mart("evaluation", table, rewrite_all=True)
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
            rows, written, new_files = {}, {}, []
            for mart in marts:
                files, written[mart.name] = _snapshot_mart(con, mart, months, previous, version_dir)
                rows[mart.name] = _create_view(con, mart, files)
                new_files += [_month_file(version_dir, mart, month) for month in written[mart.name]]
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
    left += sorted(p for p in versions.iterdir() if p.name.isdigit() and int(p.name) > newest)
    for path in left:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    return left


def _snapshot_mart(
    con: duckdb.DuckDBPyConnection, mart: Mart, months: list[str], previous: Path | None, version_dir: Path
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
    if missing and not (mart.rewrite_all or mart.may_lack_months):
        raise PublishError(f"{mart.name} has no rows for {', '.join(missing)}: nothing to publish for them")
    files, written = [], []
    for month in present:
        target = _month_file(version_dir, mart, month)
        target.parent.mkdir(parents=True, exist_ok=True)
        earlier = _month_file(previous, mart, month) if previous else None
        if mart.rewrite_all or month in months or earlier is None or not earlier.exists():
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
    return [p.name for p in old]


def read_published(published_dir: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the published DuckDB file, as a BI tool or notebook opens it."""
    path = published_dir / DUCKDB_FILE
    if not path.exists():
        raise PublishError(f"nothing is published yet: {path} does not exist")
    return duckdb.connect(str(path), read_only=True)

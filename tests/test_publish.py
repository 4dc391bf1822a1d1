"""Publishing for BI (valuetier/application/publish.py) on a small real warehouse: readers in another process never
fail and never see a mix of two publishes, and a publish that fails half-way leaves the previous one."""

import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import duckdb
import pytest

from valuetier.application.publish import (
    DUCKDB_FILE,
    PUBLISHED_MARTS,
    Mart,
    PublishError,
    current_version,
    publish,
    read_published,
)

MONTHS = ["2025-01", "2025-02", "2025-03"]


def write_warehouse(path: Path, months: list[str], value: int) -> None:
    """Every published mart with 100 customers a month whose `value` column is the same number, so a
    reader can tell which publish it sees from any row."""
    with duckdb.connect(str(path)) as con:
        for mart in PUBLISHED_MARTS:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {mart.schema}")
            con.execute(f"CREATE OR REPLACE TABLE {mart.name} (customer_id VARCHAR, month_start DATE, value INTEGER)")
            for month in months:
                con.execute(
                    f"INSERT INTO {mart.name} SELECT 'c' || i, DATE '{month}-01', ? FROM range(100) AS t(i)", [value]
                )


def snapshot(published: Path) -> dict:
    with read_published(published) as con:
        return {
            m.name: con.execute(f"SELECT count(*), min(value), max(value) FROM {m.name}").fetchone()
            for m in PUBLISHED_MARTS
        }


def test_a_publish_writes_what_changed_links_the_rest_and_is_read_only(tmp_path):
    warehouse, published = tmp_path / "w.duckdb", tmp_path / "published"
    write_warehouse(warehouse, MONTHS[:2], 1)
    first = publish(warehouse, published, MONTHS[:2])
    assert first.months_written["marts.customer_tiers"] == MONTHS[:2]  # nothing published before
    write_warehouse(warehouse, MONTHS, 1)
    second = publish(warehouse, published, MONTHS[2:])
    assert second.months_written["marts.customer_tiers"] == MONTHS[2:]
    # The evaluation's earlier months are unchanged here: linked, as the run's marts' are.
    assert second.months_written["evaluation.eval_tier_outcomes_monthly"] == MONTHS[2:]
    assert second.rows == {m.name: 300 for m in PUBLISHED_MARTS}
    assert current_version(published).name == second.version
    january = "marts.customer_tiers/month=2025-01/data.parquet"
    assert (current_version(published) / january).stat().st_ino == (
        published / "versions" / first.version / january
    ).stat().st_ino
    # The Parquet snapshot is what the DuckDB file shows.
    with duckdb.connect() as con:
        assert con.execute(
            f"SELECT count(*) FROM read_parquet('{published}/current/marts.customer_tiers/*/*.parquet')"
        ).fetchone() == (300,)
    # BI has no write path: the file has no write permission (root ignores it), and the connection BI
    # opens is read-only.
    assert (published / DUCKDB_FILE).stat().st_mode & 0o222 == 0
    with read_published(published) as con, pytest.raises(duckdb.Error):
        con.execute("DELETE FROM marts.customer_tiers")


def test_the_evaluation_months_a_run_revises_are_written_and_only_those(tmp_path):
    warehouse, published = tmp_path / "w.duckdb", tmp_path / "published"
    outcomes = "evaluation.eval_tier_outcomes_monthly"
    write_warehouse(warehouse, MONTHS[:2], 1)
    first = publish(warehouse, published, MONTHS[:2])
    write_warehouse(warehouse, MONTHS, 1)
    with duckdb.connect(str(warehouse)) as con:
        # The run of March re-evaluates January (its outcome window closed), in one row of a hundred.
        con.execute(f"UPDATE {outcomes} SET value = 5 WHERE month_start = DATE '2025-01-01' AND customer_id = 'c7'")
    second = publish(warehouse, published, MONTHS[2:])
    assert second.months_written[outcomes] == ["2025-01", "2025-03"]
    assert second.months_written["evaluation.eval_retention_monthly"] == ["2025-03"]
    with read_published(published) as con:
        assert con.execute(
            f"SELECT month_start, value FROM {outcomes} WHERE customer_id = 'c7' ORDER BY 1"
        ).fetchall() == [(date(2025, 1, 1), 5), (date(2025, 2, 1), 1), (date(2025, 3, 1), 1)]
    february = f"{outcomes}/month=2025-02/data.parquet"
    assert (current_version(published) / february).stat().st_ino == (
        published / "versions" / first.version / february
    ).stat().st_ino
    # A column the evaluation gains changes every month's rows, though no value of the old ones did.
    with duckdb.connect(str(warehouse)) as con:
        con.execute(f"ALTER TABLE {outcomes} ADD COLUMN note VARCHAR")
    third = publish(warehouse, published, MONTHS[2:])
    assert third.months_written[outcomes] == MONTHS
    # A snapshot published before fingerprints were kept, or whose fingerprints are damaged: every
    # month of the evaluation is written once.
    (published / "versions" / f"{third.version}.fingerprints.json").unlink()
    fourth = publish(warehouse, published, MONTHS[2:])
    assert fourth.months_written[outcomes] == MONTHS
    (published / "versions" / f"{fourth.version}.fingerprints.json").write_text('{"evaluation.eval_')
    assert publish(warehouse, published, MONTHS[2:]).months_written[outcomes] == MONTHS
    # A snapshot's fingerprints sit beside its folder (`current` holds the marts alone) and are pruned with it.
    sixth = publish(warehouse, published, MONTHS[2:])
    kept = [third.version, fourth.version, f"{int(fourth.version) + 1:06d}", sixth.version]
    assert sorted(p.name for p in (published / "versions").iterdir()) == sorted(
        kept + [f"{v}.fingerprints.json" for v in kept if v != third.version]
    )
    assert sorted(p.name for p in (published / "current").iterdir()) == sorted(m.name for m in PUBLISHED_MARTS)


def test_a_publish_failing_between_two_marts_leaves_the_previous_one(tmp_path):
    warehouse, published = tmp_path / "w.duckdb", tmp_path / "published"
    write_warehouse(warehouse, MONTHS[:2], 1)
    before = publish(warehouse, published, MONTHS[:2])
    write_warehouse(warehouse, MONTHS, 2)
    # The first mart is written in full, the second does not exist: the failure comes between them.
    broken = (PUBLISHED_MARTS[0], Mart("marts", "no_such_mart"))
    with pytest.raises(duckdb.CatalogException, match="no_such_mart"):
        publish(warehouse, published, MONTHS, marts=broken)
    assert current_version(published).name == before.version
    # The failed snapshot's folder and fingerprints are gone; the previous snapshot's stay.
    assert sorted(p.name for p in (published / "versions").iterdir()) == [
        before.version,
        f"{before.version}.fingerprints.json",
    ]
    assert [p.name for p in published.iterdir() if p.name.startswith(".")] == []
    assert snapshot(published) == {m.name: (200, 1, 1) for m in PUBLISHED_MARTS}


def test_a_month_without_alerts_is_published_a_month_without_tiers_is_refused(tmp_path):
    warehouse, published = tmp_path / "w.duckdb", tmp_path / "published"
    write_warehouse(warehouse, MONTHS, 1)
    with duckdb.connect(str(warehouse)) as con:  # a quiet last month: no alerts, no drift measured
        for table in ("monitoring.alerts", "monitoring.drift_monthly"):
            con.execute(f"DELETE FROM {table} WHERE month_start = DATE '{MONTHS[-1]}-01'")
    publish(warehouse, published, MONTHS)
    rows = snapshot(published)
    assert rows["monitoring.alerts"] == (200, 1, 1) and rows["marts.customer_tiers"] == (300, 1, 1)
    with duckdb.connect(str(warehouse)) as con:
        con.execute(f"DELETE FROM marts.customer_tiers WHERE month_start = DATE '{MONTHS[-1]}-01'")
    with pytest.raises(PublishError, match=f"marts.customer_tiers has no rows for {MONTHS[-1]}"):
        publish(warehouse, published, MONTHS)


READER = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, sys.argv[2])
    from pathlib import Path
    from valuetier.application.publish import PUBLISHED_MARTS, read_published
    seen, errors, deadline = [], [], time.monotonic() + float(sys.argv[3])
    while time.monotonic() < deadline:
        try:
            with read_published(Path(sys.argv[1])) as con:
                # One query over every mart: one snapshot, or a mix of two.
                union = " UNION ALL ".join(f"SELECT count(*) AS n, min(value) AS lo, max(value) AS hi FROM {m.name}"
                                           for m in PUBLISHED_MARTS)
                seen.append([list(r) for r in con.execute(union).fetchall()])
        except Exception as exc:
            errors.append(repr(exc))
    # To a file, not stdout: a pipe holds 64 KB and the test reads it only once the reader is done.
    Path(sys.argv[4]).write_text(json.dumps({"seen": seen, "errors": errors}))
    """
)


def test_readers_in_another_process_never_fail_and_never_see_a_mix(tmp_path):
    import json

    warehouse, published = tmp_path / "w.duckdb", tmp_path / "published"
    states = {1: (MONTHS[:2], 200), 2: (MONTHS, 300)}
    write_warehouse(warehouse, *states[1][:1], 1)
    publish(warehouse, published, MONTHS[:2])
    repo = Path(__file__).resolve().parent.parent
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(published), str(repo), "20", str(tmp_path / "reads.json")]
    )
    publishes = 0
    while reader.poll() is None:
        value = 2 if publishes % 2 == 0 else 1
        months = states[value][0]
        write_warehouse(warehouse, months, value)
        publish(warehouse, published, months)
        publishes += 1
    assert reader.returncode == 0
    out = json.loads((tmp_path / "reads.json").read_text())
    assert out["errors"] == []
    assert publishes >= 5 and len(out["seen"]) >= 20
    allowed = [[[states[v][1], v, v]] * len(PUBLISHED_MARTS) for v in states]
    assert all(s in allowed for s in out["seen"]), [s for s in out["seen"] if s not in allowed][:3]
    assert {s[0][1] for s in out["seen"]} == {1, 2}  # the reader saw both publishes

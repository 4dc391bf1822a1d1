"""Nothing leaves the machine: a whole console run (ingestion, dbt, Great Expectations with its Data
Docs, training, scoring, evaluation, monitoring, the report, publishing) and a dbt docs build, each
under the outbound guard (tests/outbound_guard), attempt no connection to any host but this one.
tests/test_ui.py runs `make ui` and the runs it launches under the same guard.

The guard is a check that can fail: dbt with its usage tracking turned back on is caught."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DBT, REPO

GUARD = REPO / "tests" / "outbound_guard"


def guarded_env(log: Path, **extra: str) -> dict[str, str]:
    """The environment of a process (and of every Python process it starts) under the guard."""
    path = os.pathsep.join(p for p in (str(GUARD), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "VALUETIER_OUTBOUND_LOG": str(log), **extra}


def attempts(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def dbt(args: list[str], log: Path, target: Path, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [DBT, *args, "--profiles-dir", ".", "--target-path", str(target), "--log-path", str(target / "logs")],
        cwd=REPO / "dbt_project",
        env=guarded_env(log, **extra),
        capture_output=True,
        text=True,
    )


def test_the_guard_catches_dbt_tracking_turned_back_on(tmp_path):
    log = tmp_path / "outbound.jsonl"
    parsed = dbt(["parse", "--send-anonymous-usage-stats"], log, tmp_path / "on")
    assert parsed.returncode == 0, parsed.stdout[-2000:]
    assert {a["target"] for a in attempts(log)} == {"fishtownanalytics.sinter-collect.com:443"}
    log.unlink()
    # The project's own setting (dbt_project.yml, flags): no event, and no line in dbt's debug log.
    parsed = dbt(["parse"], log, tmp_path / "off")
    assert parsed.returncode == 0, parsed.stdout[-2000:]
    assert attempts(log) == []
    assert "Sending event" not in (tmp_path / "off" / "logs" / "dbt.log").read_text()


@pytest.mark.integration
def test_a_whole_run_and_the_docs_call_nothing_outside(tmp_path):
    from valuetier.demo.generator import GeneratorConfig, generate

    landing, warehouse, home = tmp_path / "landing", tmp_path / "warehouse" / "valuetier.duckdb", tmp_path / "home"
    generate(GeneratorConfig(customers=400, months=9, seed=5, out=landing), progress=lambda _: None)
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "orchestration" / "dagster.yaml").read_text())
    log = tmp_path / "outbound.jsonl"
    paths = {
        "VALUETIER_LANDING": str(landing),
        "VALUETIER_WAREHOUSE": str(warehouse),
        "DAGSTER_HOME": str(home),
        "DBT_TARGET_PATH": str(tmp_path / "dbt_target"),
    }
    run = subprocess.run(
        [sys.executable, "-m", "orchestration.run"],
        cwd=REPO,
        env=guarded_env(log, **paths),
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert list((warehouse.parent / "quality").rglob("index.html")), "the run built no Data Docs"
    docs = dbt(["docs", "generate"], log, tmp_path / "docs", VALUETIER_WAREHOUSE=str(warehouse))
    assert docs.returncode == 0, docs.stdout[-2000:]
    assert attempts(log) == []
    dbt_logs = [*(tmp_path / "dbt_target").rglob("dbt.log"), tmp_path / "docs" / "logs" / "dbt.log"]
    assert dbt_logs and not [p for p in dbt_logs if "Sending event" in p.read_text()]

"""Shared fixtures. Integration tests run the real pipeline (Dagster, dbt, DuckDB) on a small
generated bank in a temporary DAGSTER_HOME and warehouse, once per session.

`make test` runs two pytest-xdist workers (`-n 2 --dist loadscope`), one per core: each worker is a
session of its own (its own bank, warehouse, DAGSTER_HOME and dbt target folders), and a module's
tests run on one worker, so a module fixture is built once; the session's pipeline is built by each
worker that runs a module needing it. `pytest` alone runs everything in one process, as before.
(`--dist loadgroup` could keep modules together as well, but pytest-xdist 3.8 names its groups
through a node attribute pytest 9.2 no longer reads, so every test becomes a group of its own.)"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# Settings are read once per process, so the session's paths are set before anything imports them.
SESSION_DIR = Path(tempfile.mkdtemp(prefix="valuetier-tests-"))
LANDING = SESSION_DIR / "bank" / "landing"
TRUTH = SESSION_DIR / "bank" / "ground_truth"
WAREHOUSE = SESSION_DIR / "warehouse" / "valuetier.duckdb"
os.environ.update(
    {
        "DAGSTER_HOME": str(SESSION_DIR / "dagster_home"),
        "VALUETIER_LANDING": str(LANDING),
        "VALUETIER_WAREHOUSE": str(WAREHOUSE),
        "VALUETIER_PII_KEY": "test-secret-key",
        # The test banks are small: two dbt models at once, where production builds one at a time
        # for memory (dbt_project/profiles.yml). Results do not depend on it.
        "VALUETIER_DBT_THREADS": "2",
        # dagster-dbt's invocation folders and the parse state they start from (orchestration/dbt.py):
        # the session's own, so two workers never share the parse state of another warehouse.
        "DBT_TARGET_PATH": str(SESSION_DIR / "dbt_target"),
    }
)
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two workers on two cores: scikit-learn's OpenMP threads spin while they wait and slow each
    # other many times over when both workers fit at once; one thread each. Fits do not depend on it.
    os.environ["OMP_NUM_THREADS"] = "1"
(SESSION_DIR / "dagster_home").mkdir()
REPO = Path(__file__).resolve().parent.parent
shutil.copy(REPO / "orchestration" / "dagster.yaml", SESSION_DIR / "dagster_home" / "dagster.yaml")

BANK = {"customers": 2500, "months": 15, "seed": 7}
# A bank unlike the demo: its own names and codes (with landing/mapping.yml), CSV, only the two
# required sources, no margin columns, no birth dates or income bands, every customer acquired in
# the first 3 months.
FOREIGN_DELIVERY = {
    "file_format": "csv",
    "sources": ("customers", "transactions"),
    "margins": False,
    "demographics": False,
    "profile": "foreign",
    "acquisition": "cohorts",
}
DBT = str(Path(sys.executable).parent / "dbt")
# What the browser tests saw, kept after the run (docs/demo.md): the UI, the report, the Data Docs.
SCREENSHOTS = REPO / "data" / "test-screenshots"
CHROMIUM = "/usr/bin/chromium"  # Debian's (make test installs it); Playwright's own download is not reachable


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(SESSION_DIR, ignore_errors=True)


def landing_sql(source: str) -> str:
    """A source's landing files of the session's bank, as a DuckDB table expression."""
    return f"read_parquet('{LANDING}/{source}/*.parquet', filename = true)"


def delivery_month_sql(column: str = "filename") -> str:
    """The first day of the delivery month a landing file's name carries (…/2024-03.parquet)."""
    return f"cast(regexp_extract({column}, '(\\d{{4}}-\\d{{2}})\\.parquet$', 1) || '-01' as date)"


def run_dbt(
    args: list[str], warehouse: Path, target_path: Path, check: bool = True, month: str | None = None
) -> subprocess.CompletedProcess:
    """The real dbt CLI against a given warehouse file (its own target folder, so runs do not collide),
    for every month or, given `month`, for that month's window as a monthly run builds it."""
    from valuetier.core.months import dbt_month_window

    env = {**os.environ, "VALUETIER_WAREHOUSE": str(warehouse), **(dbt_month_window(month, month) if month else {})}
    result = subprocess.run(
        [DBT, *args, "--profiles-dir", ".", "--target-path", str(target_path)],
        cwd=REPO / "dbt_project",
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 or not check, result.stdout[-4000:] + result.stderr[-2000:]
    return result


@pytest.fixture(scope="session")
def bank():
    from valuetier.demo.generator import GeneratorConfig, generate

    generate(GeneratorConfig(out=LANDING, truth=TRUTH, **BANK), progress=lambda _: None)
    return LANDING


@pytest.fixture(scope="session")
def pipeline_run(bank):
    """The whole graph materialised for every month of the small bank, through Dagster, as a first
    run does it: every month built up to indicators and CLV, the first model, every month scored once."""
    import dagster as dg

    from orchestration.run import register_months, run_months, train, training_is_possible
    from valuetier.core.settings import Settings
    from valuetier.ingest.loader import discover_months
    from valuetier.tiering.registry import Registry

    months = discover_months(bank)
    with dg.DagsterInstance.get() as instance:
        register_months(instance, months)
        result = run_months(instance, months[0], months[-1], "build_months")
        assert result.success, "the build run failed"
        current = Settings.from_env()
        assert training_is_possible(current) is None
        assert train(instance, current) is not None, "the first training failed"
        # On this short history the model need not beat the CLV ranking (measured: 43.6 % of the
        # holdout's value against 45.2 %), and the promotion gate then keeps the baseline. The
        # tests of model scoring need a champion: the first version is made one as an operator
        # would, by hand (valuetier model rollback v0001). tests/test_alert_precision.py and the
        # foreign bank run the gate's own outcome through.
        registry = Registry(current.models_dir)
        assert registry.card("v0001").promotion["rankings"], "the first model has no promotion record"
        if registry.champion_version() is None:
            registry.rollback("v0001")
        scored = run_months(instance, months[0], months[-1], "rescore_tiers")
        assert scored.success, "the scoring run failed"
    return {"months": months, "result": result, "scored": scored}

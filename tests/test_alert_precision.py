"""Alert precision through the real pipeline: a signal is only as good as its precision.

Healthy banks unlike each other, each installed and run as a person runs a first load (`python -m
orchestration.run`): no error alert in any month after their first three, and every check of the
run green. Then faults injected into the last month of a copy of a healthy installation (landing,
warehouse, registry and run history), each run as a regular monthly run of that month: every one
raises the right alert at the right severity, on the right source or column, and the same month
delivered again unchanged raises nothing.

The module writes both tables to data/alert-precision.md (docs/evaluation-and-monitoring.md shows them)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tests.conftest import FOREIGN_DELIVERY, REPO
from valuetier.application.monitoring import DELIVERY_KINDS, FAIRNESS_KINDS, POPULATION_KINDS
from valuetier.demo.generator import GeneratorConfig, generate

pytestmark = pytest.mark.integration
MONTHS, CUSTOMERS = 18, 1200
BANKS = {
    "demo (all sources, steady acquisition)": dict(seed=42),
    "foreign (mapping, CSV, two sources, no margins or demographics, cohorts)": dict(seed=5, **FOREIGN_DELIVERY),
    "cohort (every customer joins in the first quarter)": dict(seed=3, acquisition="cohorts"),
    "growth (tickets grow 2 % a month)": dict(seed=11, growth=0.02),
}
DEMO = next(iter(BANKS))
TABLES = REPO / "data" / "alert-precision.md"
CHECKS = re.compile(r"(\d+) checks passed, (\d+) failed")
FAILED_EXPECTATION = re.compile(r"(\w+) (error|warning): ([\w:]+)\s+failed")


def install(root: Path, **generator) -> dict[str, str]:
    """A bank's landing folder and an empty installation beside it: the environment of its runs."""
    generate(GeneratorConfig(customers=CUSTOMERS, months=MONTHS, out=root / "landing", **generator), lambda _: None)
    (root / "home").mkdir()
    shutil.copy(REPO / "orchestration" / "dagster.yaml", root / "home" / "dagster.yaml")
    return environment(root)


def environment(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VALUETIER_MAPPING", "DBT_TARGET_PATH")}
    return {
        **env,
        "DAGSTER_HOME": str(root / "home"),
        "VALUETIER_LANDING": str(root / "landing"),
        "VALUETIER_WAREHOUSE": str(root / "warehouse" / "valuetier.duckdb"),
        "DBT_TARGET_PATH": str(root / "dbt_target"),
    }


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orchestration.run", *args], cwd=REPO, env=env, capture_output=True, text=True
    )


def alerts(env: dict[str, str], month: str | None = None) -> list[tuple]:
    """(month, severity, kind, subject) of the installation's alerts, of one month or all."""
    with duckdb.connect(env["VALUETIER_WAREHOUSE"], read_only=True) as con:
        return con.execute(
            """SELECT strftime(month_start, '%Y-%m'), severity, kind, subject FROM monitoring.alerts
               WHERE severity <> 'info' AND (? IS NULL OR strftime(month_start, '%Y-%m') = ?) ORDER BY ALL""",
            [month, month],
        ).fetchall()


def failed_checks(run_log: str) -> set[tuple[str, str, str]]:
    """(suite, severity, expectation) of every failed Great Expectations expectation the run logged."""
    return set(FAILED_EXPECTATION.findall(run_log))


def run_log(env: dict[str, str]) -> str:
    logs = sorted((Path(env["VALUETIER_WAREHOUSE"]).parent / "logs").glob("run-*.log"))
    return logs[-1].read_text(errors="replace")


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    banks = {}
    for name, generator in BANKS.items():
        root = tmp_path_factory.mktemp("bank")
        env = install(root, **generator)
        result = run(env)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        checks = [tuple(map(int, c)) for c in CHECKS.findall(result.stdout)]
        with duckdb.connect(env["VALUETIER_WAREHOUSE"], read_only=True) as con:
            months = [m for (m,) in con.execute("SELECT DISTINCT strftime(month_start, '%Y-%m') FROM "
                                                "marts.customer_tiers ORDER BY 1").fetchall()]  # fmt: skip
            basis = con.execute("SELECT list(DISTINCT model_version) FROM marts.customer_tiers").fetchone()[0]
        banks[name] = {"root": root, "env": env, "stdout": result.stdout, "checks": checks, "months": months,
                       "alerts": alerts(env), "tiered_by": basis}  # fmt: skip
    return banks


def test_healthy_banks_raise_no_error_and_end_green(healthy):
    rows = []
    for name, bank in healthy.items():
        months, found = bank["months"], bank["alerts"]
        after_three = [a for a in found if a[0] > months[2]]
        errors = [a for a in after_three if a[1] == "error"]
        delivery_warnings = [a for a in found if a[1] == "warning" and a[2] in DELIVERY_KINDS]
        population = [a for a in found if a[2] in POPULATION_KINDS]
        # Cities are drawn independently of value in every generated bank: a fair attribute, which
        # the fairness review must not flag (age bands follow wealth, and may be flagged rightly).
        fairness = sorted({a[3] for a in found if a[2] in FAIRNESS_KINDS})
        passed, failed = (sum(c[i] for c in bank["checks"]) for i in (0, 1))
        rows.append(
            f"| {name} | {len(months)} | {sum(a[1] == 'error' for a in found)} | {len(errors)} | "
            f"{len(delivery_warnings)} | {len({a[0] for a in population})} | {', '.join(fairness) or '-'} | "
            f"{passed} / {failed} | {', '.join(bank['tiered_by'])} |"
        )
        assert not [group for group in fairness if group.startswith("city=")], (name, fairness)
        assert errors == [], (name, errors)
        assert delivery_warnings == [], (name, delivery_warnings)
        assert bank["checks"] and failed == 0, (name, bank["stdout"][-3000:])
        assert "deliveries " in bank["stdout"] and "(every month's delivery looks whole)" in bank["stdout"], name
    header = (
        "| healthy bank (1,200 customers x 18 months) | months | error alerts | errors after month 3 | "
        "delivery warnings | months with a population warning (retrain) | groups with a fairness warning | "
        "checks passed / failed | tiered by |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    write_table("healthy", header + "\n".join(rows))


def corrupt(path: Path, column: str, change) -> None:
    table = pq.read_table(path)
    index = table.schema.get_field_index(column)
    pq.write_table(table.set_column(index, column, change(table[column])), path)


def drop_rows(path: Path, share: float) -> None:
    table = pq.read_table(path)
    keep = pa.array([i % 10 >= share * 10 for i in range(table.num_rows)])
    pq.write_table(table.filter(keep), path)


def late(path: Path, hours: float) -> None:
    first = min(p.stat().st_mtime for p in path.parent.parent.glob(f"*/{path.name}"))
    os.utime(path, (first + hours * 3600, first + hours * 3600))


# (fault, what it does to the month's delivery, the signal expected: where it is seen, severity, what it names)
FAULTS = [
    ("none: the month delivered again unchanged", None, None),
    (
        "amounts x100 (a unit change)",
        lambda d, m: corrupt(d / "transactions" / f"{m}.parquet", "amount", lambda c: pc.multiply(c, 100).cast(c.type)),
        ("check", "error", "raw_transactions distribution:amount:geomean"),
    ),
    (
        "a source missing (digital_sessions)",
        lambda d, m: (d / "digital_sessions" / f"{m}.parquet").unlink(),
        ("alert", "error", "missing_source_file digital_sessions"),
    ),
    (
        "one indicator moderately shifted (30 % of the login sessions missing)",
        lambda d, m: drop_rows(d / "digital_sessions" / f"{m}.parquet", 0.3),
        ("alert", "warning", "delivery_shift logins_in_month"),
    ),
    (
        "a tier-share shift (value cut points that let in twice the high tier)",
        "cut points",
        ("alert", "warning", "tier_share_shift high"),
    ),
    (
        "a late file (balances 30 hours after the month's first file)",
        lambda d, m: late(d / "balances" / f"{m}.parquet", 30),
        ("alert", "warning", "late_source_file balances"),
    ),
]


def cut_points(env: dict[str, str], month: str, tmp: Path) -> list[str]:
    """A run config whose value cut points put the previous month's top fifth in the high tier."""
    with duckdb.connect(env["VALUETIER_WAREHOUSE"], read_only=True) as con:
        high, mid = con.execute(
            """SELECT quantile_cont(predicted_value, 0.8), quantile_cont(predicted_value, 0.5)
               FROM marts.customer_tiers WHERE month_start = (SELECT max(month_start) FROM marts.customer_tiers
                                                              WHERE strftime(month_start, '%Y-%m') < ?)""",
            [month],
        ).fetchone()
    config = tmp / "cut-points.yml"
    config.write_text(
        "ops:\n  marts__customer_tiers:\n    config:\n"
        f"      high_value_threshold: {high!r}\n      mid_value_threshold: {mid!r}\n"
    )
    return ["--config", str(config)]


def test_every_injected_fault_raises_the_right_alert(healthy, tmp_path):
    demo = healthy[DEMO]
    month = demo["months"][-1]
    rows = []
    for fault, inject, expected in FAULTS:
        root = tmp_path / re.sub(r"\W+", "-", fault)[:40]
        shutil.copytree(demo["root"], root, symlinks=True)  # published/current stays a link
        env = environment(root)
        extra = []
        if inject == "cut points":
            extra = cut_points(env, month, tmp_path)
        elif inject is not None:
            inject(Path(env["VALUETIER_LANDING"]), month)
        result = run(env, "--months", f"{month}:{month}", *extra)
        published = result.returncode == 0
        # A stopped month keeps the alerts of its earlier run: only a published month's are this run's.
        found = alerts(env, month) if published else []
        # The tiering's standing findings (retrain, fairness) are reported beside the month's signals.
        standing = (*POPULATION_KINDS[:2], *FAIRNESS_KINDS)
        signals = {(s, f"{kind} {subject}") for _, s, kind, subject in found if kind not in standing}
        signals |= {(s, f"{suite} {expectation}") for suite, s, expectation in failed_checks(run_log(env))}
        retrain = sorted({subject for _, _, kind, subject in found if kind in POPULATION_KINDS[:2]})
        unfair = sorted({subject for _, _, kind, subject in found if kind in FAIRNESS_KINDS})
        fired = sorted(f"{s} {what}" for s, what in signals)
        rows.append(
            f"| {fault} | {'yes' if published else 'no: stopped'} | {'; '.join(fired) or 'nothing'} | "
            f"{', '.join(retrain) or '-'} | {', '.join(unfair) or '-'} |"
        )
        if expected is None:
            assert published and fired == [], (fault, fired, result.stdout[-2000:])
            continue
        _, severity, what = expected
        assert (severity, what) in signals, (fault, fired, result.stdout[-3000:])
        # Nothing fires above the severity the fault deserves.
        assert severity == "error" or not [f for f in fired if f.startswith("error")], (fault, fired)
    header = (
        f"| fault injected into {month} of a copy of the demo-shaped bank | month published | what fired "
        "(severity, alert or failed check, subject) | population warnings (retrain) | fairness warnings |\n"
        "|---|---|---|---|---|\n"
    )
    write_table("faults", header + "\n".join(rows))


def write_table(name: str, table: str) -> None:
    TABLES.parent.mkdir(parents=True, exist_ok=True)
    sections = {}
    if TABLES.exists():
        for part in ("\n" + TABLES.read_text()).split("\n## ")[1:]:
            title, _, body = part.partition("\n")
            sections[title] = body.strip()
    sections[name] = table
    TABLES.write_text("".join(f"\n## {title}\n{body}\n" for title, body in sorted(sections.items())).lstrip())

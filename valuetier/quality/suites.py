"""Data quality: the Great Expectations suites in expectations/, validated on the DuckDB tables
themselves through GX's SQL data source (aggregate queries in DuckDB, never whole tables in pandas).

A suite is a GX suite JSON file plus, in its meta, the table it checks, the column that dates a
row's month and the table-level checks GX has no built-in for on a month range: volume and
distribution within bounds learned from the trailing months, freshness, referential integrity.
Those are expanded here into GX `unexpected_rows_expectation`s whose SQL reads only months before
the checked one for the bounds (point in time). Each expectation carries a severity in its meta:
error (blocks downstream) or warning (recorded).

A raw suite (meta "checked_on": "month_profiles") runs on the month profiles ingestion writes
(valuetier.quality.profiles), not on the rows again: each row rule is the count of rows breaking
it, and the bands compare the profiles' statistics.

The queries run in an in-memory GX context; results are stored in a file-backed one beside the
warehouse and rendered as Data Docs.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import duckdb

from valuetier.core.months import parse_month
from valuetier.core.settings import REPO_ROOT, DuckDBLimits
from valuetier.core.tables import PROFILES_TABLE, QUARANTINE_TABLE
from valuetier.core.warehouse import connect, quarantine_by_month
from valuetier.quality.acceptance import ACCEPTABLE_PREFIXES, accept_command, accepted_months, is_learned
from valuetier.quality.data_docs import compile_templates_once, localise
from valuetier.quality.profiles import ROWS, Measure, columns_rule, row_rule, unprofiled_months, write_profiles

EXPECTATIONS_DIR = REPO_ROOT / "expectations"
SEVERITIES = ("error", "warning")
SAMPLE_SIZE = 5
log = logging.getLogger(__name__)


class SuiteError(ValueError):
    """A suite file that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    table: str  # schema.table in the warehouse
    month_column: str  # DATE column holding the first day of the row's month
    key: tuple[str, ...]
    expectations: tuple[dict, ...]  # GX expectation configurations, table-level checks expanded
    checks: dict = field(default_factory=dict)  # the table-level check specs of the suite's meta
    # Checked on month profiles (meta "checked_on": "month_profiles"): the statistics ingestion writes.
    measures: tuple[Measure, ...] = ()

    @property
    def profiled(self) -> bool:
        return bool(self.measures)

    @property
    def asset_key_path(self) -> list[str]:
        return self.table.split(".")


def load_suite(path: Path) -> Suite:
    try:
        raw = json.loads(path.read_text())
        meta = raw["meta"]
        expectations, measures = tuple(raw.get("expectations", [])), ()
        if meta.get("checked_on") == "month_profiles":
            expectations, measures = profiled_expectations(raw["name"], meta, expectations)
        else:
            expectations += tuple(expand_table_checks(meta))
        suite = Suite(
            name=raw["name"],
            path=path,
            table=meta["table"],
            month_column=meta["month_column"],
            key=tuple(meta["key"]),
            expectations=expectations,
            checks=meta.get("checks", {}),
            measures=measures,
        )
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise SuiteError(f"{path}: not a ValueTier expectation suite ({type(exc).__name__}: {exc})") from exc
    for i, expectation in enumerate(suite.expectations):
        severity = expectation.get("meta", {}).get("severity")
        if severity not in SEVERITIES:
            raise SuiteError(
                f"{path}: expectation {i} ({expectation.get('type')}) needs meta.severity error or warning"
            )
    return suite


def all_suites(directory: Path = EXPECTATIONS_DIR) -> list[Suite]:
    return [load_suite(path) for path in sorted(directory.glob("*.json"))]


# --- table-level checks, expanded into unexpected-rows SQL -------------------------------------


@dataclass(frozen=True)
class _TableStatistics:
    """A month's statistics computed from the checked table's rows."""

    table: str
    month_column: str

    def batch_months(self) -> str:
        return f"SELECT DISTINCT {self.month_column} FROM {{batch}}"

    def months_before(self) -> str:
        month = self.month_column
        return f"SELECT DISTINCT {month} AS m FROM {self.table} WHERE {month} < DATE '$first_month'"

    def by_month(self, name: str, expression: str, trailing: int) -> str:
        return (
            f"SELECT {self.month_column} AS month, {expression} AS observed FROM {self.table}\n    WHERE "
            f"{self.month_column} BETWEEN ({_first_trailing_month(self, trailing)}) AND DATE '$last_month'"
            "\n    GROUP BY 1"
        )

    def loaded(self) -> str:
        return (
            f"SELECT {self.month_column} AS month, count(*) AS n FROM {self.table}\n    "
            f"WHERE {self.month_column} IN (SELECT month FROM checked) GROUP BY 1"
        )


@dataclass(frozen=True)
class _ProfileStatistics:
    """A month's statistics read from the month profiles ingestion wrote (valuetier.quality.profiles)."""

    suite: str

    def _with_rows(self) -> str:
        return f"SELECT month FROM {PROFILES_TABLE} WHERE suite = '{self.suite}' AND statistic = '{ROWS}' AND value > 0"

    def batch_months(self) -> str:
        return f"SELECT month FROM {{batch}} WHERE statistic = '{ROWS}' AND value > 0"

    def months_before(self) -> str:
        return f"SELECT month AS m FROM ({self._with_rows()}) WHERE month < DATE '$first_month'"

    def by_month(self, name: str, expression: str, trailing: int) -> str:
        return (
            f"SELECT month, value AS observed FROM {PROFILES_TABLE}\n    WHERE suite = '{self.suite}' AND statistic = "
            f"'{name}' AND month IN ({self._with_rows()})\n    "
            f"AND month BETWEEN ({_first_trailing_month(self, trailing)}) AND DATE '$last_month'"
        )

    def loaded(self) -> str:
        return (
            f"SELECT month, value AS n FROM {PROFILES_TABLE}\n    WHERE suite = '{self.suite}' AND statistic = "
            f"'{ROWS}' AND month IN (SELECT month FROM checked)"
        )


_Statistics = _TableStatistics | _ProfileStatistics


def _first_trailing_month(statistics: _Statistics, trailing: int) -> str:
    """SQL for the earliest month the bands of the checked months read: the `trailing`-th month
    with rows before $first_month (or $first_month itself). A run's statistics then cost the months
    it checks and their trailing months, not the whole table's history."""
    return (
        f"SELECT coalesce(min(m), DATE '$first_month') FROM ({statistics.months_before()} "
        f"ORDER BY m DESC LIMIT {trailing})"
    )


def _checked_months(statistics: _Statistics) -> str:
    """The CTE `checked`: every month of the checked range ($first_month..$last_month, bound at
    validation), with or without rows, and the batch's own months."""
    return f"""checked AS (
    SELECT CAST(unnest(range(DATE '$first_month', DATE '$last_month' + INTERVAL 1 MONTH, INTERVAL 1 MONTH)) AS DATE)
        AS month
    UNION {statistics.batch_months()}
)"""


def _trailing_band(statistics: _Statistics, name: str, expression: str, spec: dict, empty: str | None = "NULL") -> str:
    """Months checked whose statistic (`name`, computed as `expression`) lies outside the band of the
    trailing months: from their
    smallest to their largest value, widened on each side by the larger of `low`/`high` x their
    median and `fence` x their scaled median absolute deviation (1.4826 MAD, the standard
    deviation's robust twin). A steady trend or a volatile history widens the band by itself, the
    median keeps one campaign month from setting the margin, and a month far outside what the
    trailing months did still fails. A checked month without rows counts as `empty` (None:
    skipped, as an entity source's month with no changes); months with too little history are not
    judged. $first_month and $last_month are bound at validation."""
    trailing, history = int(spec.get("trailing_months", 6)), int(spec.get("min_history", 3))
    high, fence = float(spec["high"]), float(spec.get("fence", 3))
    # Without `low` a band has no lower side: an entity source delivers only what changed, and a bank
    # that stops acquiring (a cohort built by one campaign) delivers far fewer customers, not a fault.
    lower = (
        "-'infinity'::DOUBLE"
        if spec["low"] is None
        else f"trailing_min - greatest({float(spec['low'])} * abs(trailing_median), {fence} * trailing_mad)"
    )
    without_rows = (
        ""
        if empty is None
        else f"\n    UNION ALL SELECT month, {empty} FROM checked WHERE month NOT IN (SELECT month FROM stats)"
    )
    return f"""WITH stats AS (
    {statistics.by_month(name, expression, trailing)}
), {_checked_months(statistics)}, per_month AS (
    SELECT month, observed FROM stats{without_rows}
), numbered AS (
    SELECT month, observed, row_number() OVER (ORDER BY month) AS k FROM per_month
), past_months AS (
    SELECT c.month, c.observed, p.observed AS past
    FROM numbered c JOIN numbered p ON p.k BETWEEN c.k - {trailing} AND c.k - 1
), centre AS (
    SELECT month, any_value(observed) AS observed, count(past) AS history_months, median(past) AS trailing_median,
           min(past) AS trailing_min, max(past) AS trailing_max
    FROM past_months GROUP BY month
), spread AS (
    SELECT c.*, 1.4826 * median(abs(t.past - c.trailing_median)) AS trailing_mad
    FROM centre c JOIN past_months t USING (month)
    GROUP BY ALL
), band AS (
    SELECT *,
           {lower} AS lower_bound,
           trailing_max + greatest({high} * abs(trailing_median), {fence} * trailing_mad) AS upper_bound
    FROM spread
)
SELECT strftime(month, '%Y-%m') AS month, observed, trailing_median, trailing_mad, lower_bound, upper_bound
FROM band
WHERE month BETWEEN DATE '$first_month' AND DATE '$last_month' AND history_months >= {history}
  AND (observed < lower_bound OR observed > upper_bound)
ORDER BY month"""


def _widening(spec: dict) -> str:
    low = "no lower bound" if spec["low"] is None else f"{spec['low']:.0%}"
    return f"{low}/{spec['high']:.0%}"


def _unexpected_rows(name: str, description: str, sql: str, severity: str, **meta) -> dict:
    return {
        "type": "unexpected_rows_expectation",
        "kwargs": {"unexpected_rows_query": sql, "description": description},
        "meta": {"severity": severity, "check": name, **meta},
    }


def _distribution_statistics(spec: dict) -> dict[str, str]:
    # The geometric mean of the magnitudes: a unit change moves it as far as the mean, and one very
    # large balance or amount (a heavy tail) does not. Its logs are summed as decimals, exactly: a
    # float sum depends on the order DuckDB's threads add in, and a month's profile is stored.
    column = spec["column"]
    logs = f"CAST(ln(1 + abs({column})) AS DECIMAL(38, 18))"
    return {"geomean": f"exp(CAST(sum({logs}) AS DOUBLE) / count({column}))"} | {
        f"p{round(q * 100)}": f"quantile_cont({column}, {q})" for q in spec.get("quantiles", [])
    }


def _learned_checks(meta: dict, statistics: _Statistics) -> list[dict]:
    """The volume, distribution and quarantine-share checks, on the table's rows or on its profiles."""
    checks = meta.get("checks", {})
    expanded = []
    if volume := checks.get("volume"):
        expanded.append(
            _unexpected_rows(
                "volume",
                f"Row count of each month within the robust band of its trailing {volume.get('trailing_months', 6)} "
                f"months (their range widened by {_widening(volume)} of their median, or by "
                f"{volume.get('fence', 3)} scaled MADs where wider)"
                + (", a month without rows skipped" if volume.get("skip_empty") else ""),
                _trailing_band(statistics, ROWS, "count(*)", volume, empty=None if volume.get("skip_empty") else "0"),
                volume.get("severity", "error"),
            )
        )
    for spec in checks.get("distribution", []):
        column = spec["column"]
        for name, expression in _distribution_statistics(spec).items():
            expanded.append(
                _unexpected_rows(
                    f"distribution:{column}:{name}",
                    f"{name} of {column} in each month within the robust band of its trailing months "
                    f"(their range widened by {_widening(spec)} of their median, or by "
                    f"{spec.get('fence', 3)} scaled MADs where wider)",
                    _trailing_band(statistics, f"{name}:{column}", expression, spec),
                    spec.get("severity", "error") if name == "geomean" else spec.get("quantile_severity", "warning"),
                )
            )
    if quarantine := checks.get("quarantine"):
        source, share = quarantine["source"], float(quarantine["max_share"])
        expanded.append(
            _unexpected_rows(
                "quarantine_share",
                f"At most {share:.0%} of each month's delivered {source} rows quarantined",
                f"""WITH {_checked_months(statistics)}, loaded AS (
    {statistics.loaded()}
), rejected AS (
    SELECT delivery_month AS month, count(*) AS n FROM {QUARANTINE_TABLE}
    WHERE source = '{source}' AND delivery_month IN (SELECT month FROM checked) GROUP BY 1
)
SELECT strftime(c.month, '%Y-%m') AS month, coalesce(r.n, 0) AS quarantined, coalesce(l.n, 0) AS loaded
FROM checked c LEFT JOIN loaded l USING (month) LEFT JOIN rejected r USING (month)
WHERE coalesce(r.n, 0) > {share} * (coalesce(l.n, 0) + coalesce(r.n, 0))
ORDER BY 1""",
                quarantine.get("severity", "error"),
            )
        )
    return expanded


def _freshness(meta: dict) -> tuple[str, str, str] | None:
    """(description, predicate of a row whose date is not in its delivery's month, the SELECT of
    such rows from {batch})."""
    freshness, month_column = meta.get("checks", {}).get("freshness"), meta["month_column"]
    if not freshness:
        return None
    column = freshness["column"]
    wrong_month = (
        f"CAST({column} AS DATE) <> last_day({month_column})"
        if freshness.get("month_end")
        else f"date_trunc('month', {column}) <> {month_column}"
    )
    description = f"{column} falls in the month of the delivery" + (
        " (its last day)" if freshness.get("month_end") else ""
    )
    return description, wrong_month, f"SELECT {', '.join(meta['key'])}, {column} FROM {{batch}} WHERE {wrong_month}"


def _references(meta: dict) -> list[tuple[dict, str, str]]:
    """(spec, description, the rows that name no parent row) of each reference check."""
    month_column, key = meta["month_column"], meta["key"]
    found = []
    for ref in meta.get("checks", {}).get("references", []):
        column, parent = ref["column"], ref["table"]
        when = "=" if ref.get("same_month") else "<="
        as_of = f" AND p.{ref['parent_month_column']} {when} b.{month_column}" if ref.get("parent_month_column") else ""
        description = f"{column} names a row of {parent}" + (
            (" of the same month" if ref.get("same_month") else " delivered on or before the month") if as_of else ""
        )
        parent_column = ref.get("parent_column", column)
        shown = ", ".join(f"b.{c}" for c in dict.fromkeys([*key, column]))
        rows = f"SELECT {shown} FROM (SELECT * FROM {{batch}}) AS b"
        if as_of and when == "=":
            # A same-month reference is an anti-join written as one: DuckDB counts a correlated NOT
            # EXISTS (what GX's row count wraps it in) about 3.5 times slower than it returns the
            # same rows (1.3 against 0.4 s over 2.4 M tiers). A parent holds a key once a month, so
            # the join does not multiply rows; an earlier-delivery parent may hold it many times.
            sql = (
                f"{rows} LEFT JOIN {parent} p ON p.{parent_column} = b.{column}{as_of} "
                f"WHERE b.{column} IS NOT NULL AND p.{parent_column} IS NULL"
            )
        else:
            sql = (
                f"{rows} WHERE b.{column} IS NOT NULL "
                f"AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.{parent_column} = b.{column}{as_of})"
            )
        found.append((ref, description, sql))
    return found


def expand_table_checks(meta: dict) -> list[dict]:
    """The table-level checks of a suite checked on its table's rows."""
    expanded = _learned_checks(meta, _TableStatistics(meta["table"], meta["month_column"]))
    if freshness := _freshness(meta):
        description, _, shown = freshness
        spec = meta["checks"]["freshness"]
        expanded.append(
            _unexpected_rows("freshness", description, shown, spec.get("severity", "error"), column=spec["column"])
        )
    for ref, description, sql in _references(meta):
        check, severity = f"references:{ref['column']}", ref.get("severity", "error")
        expanded.append(_unexpected_rows(check, description, sql, severity, column=ref["column"]))
    return expanded


def profiled_expectations(name: str, meta: dict, expectations: tuple[dict, ...]) -> tuple[tuple, tuple]:
    """A suite checked on month profiles: (its expectations on the profile rows, the measures a
    month's profile holds). Every row rule becomes the count of the rows breaking it, which must be
    0; the learned bands compare the profiles' statistics."""
    table, key = meta["table"], tuple(meta["key"])
    measures: list[Measure] = []
    checked: list[dict] = []

    def count(check: str, column: str | None, description: str, severity: str, measure: Measure) -> None:
        measures.append(measure)
        checked.append(
            _unexpected_rows(
                check,
                f"{description} (rows breaking it counted in each month's profile)",
                f"SELECT strftime(month, '%Y-%m') AS month, CAST(value AS BIGINT) AS unexpected_rows FROM {{batch}} "
                f"WHERE statistic = '{measure.name}' AND value > 0 ORDER BY month",
                severity,
                column=column,
                rows_query=measure.rows_query,
            )
        )

    for i, expectation in enumerate(expectations):
        kind, kwargs = expectation["type"], expectation["kwargs"]
        severity = expectation.get("meta", {}).get("severity")
        column = kwargs.get("column") or (",".join(kwargs["column_list"]) if "column_list" in kwargs else None)
        if kind == "expect_table_columns_to_match_set":
            measure = Measure(kind, rows_query=columns_rule(table, kwargs))
            count(kind, None, f"the columns of {table} are the suite's", severity, measure)
        elif kind == "unexpected_rows_expectation":
            check, query = expectation["meta"]["check"], kwargs["unexpected_rows_query"]
            count(check, None, kwargs.get("description", check), severity, Measure(check, rows_query=query))
        elif rule := row_rule(expectation, key):
            aggregate, shown = rule
            measure = Measure(f"{kind}:{column}", aggregate=aggregate, rows_query=shown)
            count(kind, column, f"{kind} {column}", severity, measure)
        else:
            raise SuiteError(f"suite {name}: expectation {i} ({kind}) cannot be checked on month profiles")
    statistics = _ProfileStatistics(name)
    for spec in meta.get("checks", {}).get("distribution", []):
        for statistic, expression in _distribution_statistics(spec).items():
            measures.append(Measure(f"{statistic}:{spec['column']}", aggregate=expression))
    checked += _learned_checks(meta, statistics)
    if freshness := _freshness(meta):
        description, wrong_month, shown = freshness
        spec = meta["checks"]["freshness"]
        measure = Measure("freshness", f"count_if({wrong_month})", shown)
        count("freshness", spec["column"], description, spec.get("severity", "error"), measure)
    for ref, description, sql in _references(meta):
        check = f"references:{ref['column']}"
        count(check, ref["column"], description, ref.get("severity", "error"), Measure(check, rows_query=sql))
    return tuple(checked), tuple(measures)


# --- Great Expectations on DuckDB --------------------------------------------------------------


class _DuckDBDialect:
    """Stands for DuckDB in GX's list of dialects that keep one connection for a validation."""

    value = "duckdb"

    def __eq__(self, other: object) -> bool:
        return str(getattr(other, "value", other)).lower() == "duckdb"

    def __hash__(self) -> int:
        return hash("duckdb")


def _persist_duckdb_connections() -> None:
    """GX 1.24 closes a SQL connection between computing metrics and reading them, which on DuckDB
    fails every expectation with IndexError (GX issues #10738, #11579). It keeps one connection
    for sqlite and a few others; DuckDB joins that list. tests/test_quality.py fails loudly if a
    GX upgrade moves it."""
    from great_expectations.execution_engine import sqlalchemy_execution_engine as engine

    if not any(d == "duckdb" for d in engine._PERSISTED_CONNECTION_DIALECTS):
        engine._PERSISTED_CONNECTION_DIALECTS = (*engine._PERSISTED_CONNECTION_DIALECTS, _DuckDBDialect())


@dataclass(frozen=True)
class ExpectationOutcome:
    expectation: str  # GX type, or the table-level check it was expanded from
    column: str | None
    severity: str
    success: bool
    observed: Any
    unexpected_count: int | None
    samples: list = field(default_factory=list)
    # The query failed (a broken suite, or a column the table lacks). On GX's one DuckDB connection
    # a failed query also aborts the queries after it, so the first error is the one to read.
    error: str | None = None
    note: str | None = None  # why the severity is not the suite's (a first load downgrades learned checks)
    to_accept: list[str] = field(default_factory=list)  # the commands that accept each failing month

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v not in (None, [])}


@dataclass(frozen=True)
class SuiteResult:
    suite: str
    table: str
    first_month: str
    last_month: str
    rows: int
    outcomes: list[ExpectationOutcome]
    docs_index: Path
    docs_page: Path  # this validation's page of the Data Docs
    seconds: float
    quarantined: dict[str, dict[str, int]] = field(default_factory=dict)  # month -> reason -> rows (raw suites)
    accepted: list[dict] = field(default_factory=list)  # operator acceptances applied to the checked months
    first_load: bool = False  # the run loads a history from its first month: learned checks warn only

    @property
    def errors(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success and o.severity == "error"]

    @property
    def warnings(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success and o.severity == "warning"]

    @property
    def passed(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class _Contexts:
    """The two GX contexts a process validates with. The queries run in an in-memory context: its
    datasource, query asset and suite are set up anew for every validation at no file write. The
    results are stored, and rendered as Data Docs, by the file context beside the warehouse.

    Why two: a file context writes great_expectations.yml (and a suite, validation definition and
    checkpoint file) for every validation, and parses its configuration again each time; that set-up
    was most of a month's raw check (0.7 of 0.85 s at 100,000 customers)."""

    results: Any  # FileDataContext
    queries: Any  # EphemeralDataContext
    stored: _StoredResults  # the results' validation results, read once in the process


_contexts: dict[Path, tuple[tuple, _Contexts]] = {}  # quality folder -> (its configuration's stamp, contexts)


def _gx_contexts(quality_dir: Path) -> _Contexts:
    """This process's contexts for `quality_dir`, made once; again if the directory was replaced."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    _persist_duckdb_connections()
    compile_templates_once()
    config = quality_dir / "gx" / "great_expectations.yml"
    stamp, known = _contexts.get(quality_dir.resolve(), (None, None))
    if known is not None and stamp == _config_stamp(config):
        return known
    results = gx.get_context(mode="file", project_root_dir=str(quality_dir))
    if results.config.analytics_enabled is not False:
        results.enable_analytics(False)  # nothing about the bank's runs leaves the machine
    queries = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
            store_backend_defaults=InMemoryStoreBackendDefaults(),
        ),
    )
    contexts = _Contexts(results=results, queries=queries, stored=_StoredResults(results))
    _contexts[quality_dir.resolve()] = (_config_stamp(config), contexts)  # one a folder: a replaced one's goes
    return contexts


class _StoredResults:
    """The Data Docs index reads every stored validation result again each time it is built, to
    list it: a cost that grows with every run. A stored result never changes (its key holds its run
    time), so the process keeps what the index lists of each (the result as stored, without its
    expectations' results: a few kilobytes) once read or stored: a run's later checks read none
    again. The context is this module's own; the index is the only reader of this method."""

    def __init__(self, context) -> None:
        self._read = context.get_validation_result
        self._store = context.validation_results_store
        self._known: dict[tuple, Any] = {}
        context.get_validation_result = self.get

    @staticmethod
    def _key(suite_name: str, run_id, batch_identifier) -> tuple:
        # A run without a name is stored, and read back, as "__none__": to_tuple names both alike.
        return (suite_name, run_id.to_tuple() if hasattr(run_id, "to_tuple") else str(run_id), str(batch_identifier))

    def remember(self, key, result) -> None:
        name = key.expectation_suite_identifier.name
        self._known[self._key(name, key.run_id, key.batch_identifier)] = self._listed(result)

    def get(self, expectation_suite_name, run_id=None, batch_identifier=None, failed_only=False, **kwargs):
        from great_expectations.core import ExpectationSuiteValidationResult

        if run_id is None or batch_identifier is None or failed_only:  # not one stored result as stored
            return self._read(expectation_suite_name, run_id, batch_identifier, failed_only=failed_only, **kwargs)
        key = self._key(expectation_suite_name, run_id, batch_identifier)
        if key not in self._known:
            result = self._read(expectation_suite_name, run_id, batch_identifier, **kwargs)
            if not isinstance(result, ExpectationSuiteValidationResult):
                return result  # none stored under that key
            self._known[key] = self._listed(result)
        return self._known[key]

    def _listed(self, result):
        """The result as the store reads it back (its serialised form orders the meta's keys), without
        its expectations' results."""
        from great_expectations.core import ExpectationSuiteValidationResult

        listed = ExpectationSuiteValidationResult(
            success=result.success,
            results=[],
            suite_name=result.suite_name,
            suite_parameters=result.suite_parameters,
            statistics=result.statistics,
            meta=result.meta,
            batch_id=result.batch_id,
        )
        return self._store.deserialize(self._store.serialize(listed))


def _config_stamp(config: Path) -> tuple:
    """Which file context a configuration file stands for: a replaced or edited file is a new one."""
    try:
        stat = config.stat()
    except FileNotFoundError:
        return ()
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def _release(datasource) -> None:
    """Close every connection GX opened on the warehouse: DuckDB lets one process write the file,
    and dbt (another process) or a differently configured connection of ours comes next."""
    engine = datasource.execution_engine
    if engine is not None:
        if getattr(engine, "_connection", None) is not None:
            engine._connection.close()
            engine._connection = None
        engine.engine.dispose()
    datasource.get_engine().dispose()


def _store_and_render(contexts: _Contexts, quality_dir: Path, suite: Suite, validation, index: bool) -> Path:
    """Store the validation result as a checkpoint would, render its page, and the index if
    `index`; the page's path."""
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    run_id = RunIdentifier(run_time=datetime.now(UTC))
    validation.meta |= {"run_id": run_id, "validation_time": run_id.run_time, "batch_parameters": None}
    key = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite.name),
        run_id=run_id,
        batch_identifier=f"warehouse-{suite.name}",
    )
    contexts.results.validation_results_store.set(key, validation)
    contexts.stored.remember(key, validation)
    # This validation's page only (a full build re-renders every stored result, a cost that grows
    # with every run), and the index if asked.
    rendered = time.time()
    contexts.results.build_data_docs(resource_identifiers=[key], build_index=index)
    localise(docs_index(quality_dir).parent, since=rendered - 1)  # served offline (valuetier.quality.data_docs)
    (site,) = contexts.results.get_docs_sites_urls(resource_identifier=key, only_if_exists=False)
    return Path(unquote(urlparse(site["site_url"]).path))


def build_docs_index(quality_dir: Path) -> Path:
    """Build the Data Docs index of `quality_dir`: it lists every stored validation result (what
    `validate(..., index=False)` leaves to its caller, once for many validations). The index's path."""
    contexts = _gx_contexts(quality_dir)
    keys = contexts.results.validation_results_store.list_keys()
    if keys:
        # The index is built with a page: the latest result's, rendered again as it was.
        rendered = time.time()
        latest = max(keys, key=lambda k: k.run_id.run_time)
        contexts.results.build_data_docs(resource_identifiers=[latest], build_index=True)
        localise(docs_index(quality_dir).parent, since=rendered - 1)
    return docs_index(quality_dir)


def _exception_message(info) -> str | None:
    """GX reports an exception flat ({raised_exception, exception_message}) or per metric."""
    if not info:
        return None
    if "raised_exception" in info:
        return info["exception_message"] if info["raised_exception"] else None
    return next((v["exception_message"] for v in info.values() if v.get("raised_exception")), None)


def _outcome(result) -> ExpectationOutcome:
    config = result.expectation_config
    details = result.result or {}
    samples = details.get("partial_unexpected_index_list") or details.get("partial_unexpected_list") or []
    return ExpectationOutcome(
        expectation=config.meta.get("check", config.type),
        column=config.kwargs.get("column")
        or (",".join(config.kwargs["column_list"]) if "column_list" in config.kwargs else None)
        or config.meta.get("column"),
        severity=config.meta["severity"],
        success=bool(result.success),
        observed=details.get("observed_value", details.get("unexpected_percent")),
        unexpected_count=details.get("unexpected_count"),
        samples=list(samples)[:SAMPLE_SIZE],
        error=_exception_message(result.exception_info) if not result.success else None,
    )


def bound_expectations(
    suite: Suite, first_month: str, last_month: str, accepted: dict[str, dict] | None = None
) -> list[dict]:
    """The suite's expectations with the checked month range bound into their SQL; the months an
    operator accepted for a check are left out of that check's unexpected rows."""
    first, last = parse_month(first_month).isoformat(), parse_month(last_month).isoformat()
    accepted = accepted or {}
    bound = []
    for expectation in suite.expectations:
        kwargs = dict(expectation["kwargs"])
        if "unexpected_rows_query" in kwargs:
            query = kwargs["unexpected_rows_query"].replace("$first_month", first).replace("$last_month", last)
            months = sorted(accepted.get(expectation.get("meta", {}).get("check"), {}))
            if months:
                listed = ", ".join(f"'{parse_month(m).strftime('%Y-%m')}'" for m in months)
                query = f"SELECT * FROM ({query}) AS unaccepted WHERE month NOT IN ({listed})"
            kwargs["unexpected_rows_query"] = query
        bound.append({**expectation, "kwargs": kwargs})
    return bound


def _judged(outcome: ExpectationOutcome, suite: Suite, first_load: bool) -> ExpectationOutcome:
    """A failed learned check warns only while a history is first loaded; every failed table-level
    check names the commands that accept its months."""
    if outcome.success or outcome.error:
        return outcome
    changes: dict = {}
    months = sorted({s["month"] for s in outcome.samples if isinstance(s, dict) and "month" in s})
    if outcome.expectation.startswith(ACCEPTABLE_PREFIXES):
        changes["to_accept"] = [accept_command(suite.name, outcome.expectation, m) for m in months]
    if first_load and outcome.severity == "error" and is_learned(outcome.expectation):
        changes |= {
            "severity": "warning",
            "note": "first load of a history: bounds learned from its own first months warn, they do not block; "
            "in a regular monthly run this check blocks",
        }
    return ExpectationOutcome(**{**outcome.__dict__, **changes}) if changes else outcome


def batch_query(suite: Suite, first_month: str, last_month: str) -> str:
    """The rows GX validates: the checked months' rows, or their profiles for a profiled suite."""
    first, last = parse_month(first_month), parse_month(last_month)
    if suite.profiled:
        return (
            f"SELECT * FROM {PROFILES_TABLE} WHERE suite = '{suite.name}' AND month BETWEEN DATE '{first.isoformat()}' "
            f"AND DATE '{last.isoformat()}'"
        )
    return (
        f"SELECT * FROM {suite.table} WHERE {suite.month_column} BETWEEN DATE '{first.isoformat()}' "
        f"AND DATE '{last.isoformat()}'"
    )


def profile_months(con: duckdb.DuckDBPyConnection, suite: Suite, months) -> None:
    """Write the profiles of `months` of a profiled suite (what ingestion does as it loads a month)."""
    write_profiles(con, suite.name, suite.table, suite.month_column, list(suite.measures), months)


def _profile_what_is_missing(warehouse: Path, suite: Suite, last_month: str, limits: DuckDBLimits) -> list[str]:
    """Profile the months up to the checked ones that no profile describes (loaded without one, or
    changed since), so that a profile always describes the rows it stands for."""
    with connect(warehouse, limits=limits) as con:
        months = unprofiled_months(con, suite.name, suite.table, suite.month_column, last_month)
        if months:
            con.execute("BEGIN TRANSACTION")
            profile_months(con, suite, months)
            con.execute("COMMIT")
    if months:
        log.info("%s: profiled %d month(s) loaded without a profile: %s", suite.name, len(months), ", ".join(months))
    return months


def validate(
    warehouse: Path,
    quality_dir: Path,
    suite: Suite,
    first_month: str,
    last_month: str,
    limits: DuckDBLimits | None = None,
    index: bool = True,
) -> SuiteResult:
    """Validate the months first..last of the suite's table; results go to the Data Docs. `limits`:
    the settings' (default: read from this process's environment). `index`: build the Data Docs
    index too; a caller validating many suites in a row passes False and calls build_docs_index once
    after them (the index lists every stored result: building it after each validation costs more
    with every run kept)."""
    import great_expectations as gx

    started = time.perf_counter()
    limits = limits or DuckDBLimits.for_warehouse(warehouse)
    if suite.profiled:
        _profile_what_is_missing(warehouse, suite, last_month, limits)
    query = batch_query(suite, first_month, last_month)
    accepted = accepted_months(quality_dir, suite.name)
    expectations = bound_expectations(suite, first_month, last_month, accepted)
    contexts = _gx_contexts(quality_dir)
    datasource = contexts.queries.data_sources.add_or_update_sql(
        name="warehouse",
        connection_string=f"duckdb:///{warehouse}",
        kwargs={"connect_args": {"config": limits.config()}},
    )
    try:
        batch = datasource.add_query_asset(name=suite.name, query=query).add_batch_definition_whole_table("months")
        validation = batch.get_batch().validate(
            gx.ExpectationSuite(name=suite.name, expectations=expectations),
            result_format={
                "result_format": "SUMMARY",
                "partial_unexpected_count": SAMPLE_SIZE,
                "unexpected_index_column_names": list(suite.key),
            },
        )
    finally:
        _release(datasource)
    page = _store_and_render(contexts, quality_dir, suite, validation, index)
    with connect(warehouse, read_only=True, limits=limits) as con:
        counted = (
            f"SELECT coalesce(sum(value), 0) FROM ({query}) WHERE statistic = '{ROWS}'"
            if suite.profiled
            else f"SELECT count(*) FROM ({query})"
        )
        rows = int(con.execute(counted).fetchone()[0])
        first_load = is_first_load(con, suite, first_month, last_month)
        outcomes = [
            _judged(_with_row_samples(con, _outcome(r), r.expectation_config, suite, query), suite, first_load)
            for r in validation.results
        ]
        source = suite.checks.get("quarantine", {}).get("source")
        quarantined = quarantine_by_month(con, source, first_month, last_month) if source else {}
    return SuiteResult(
        suite=suite.name,
        table=suite.table,
        first_month=first_month,
        last_month=last_month,
        rows=rows,
        outcomes=outcomes,
        docs_index=docs_index(quality_dir),
        docs_page=page,
        seconds=time.perf_counter() - started,
        quarantined=quarantined,
        accepted=[
            asdict(a)
            for months in accepted.values()
            for month, a in sorted(months.items())
            if first_month <= month <= last_month
        ],
        first_load=first_load,
    )


def is_first_load(con: duckdb.DuckDBPyConnection, suite: Suite, first_month: str, last_month: str) -> bool:
    """A run over several months with nothing in the table before them: a history loaded for the first time."""
    if first_month == last_month:
        return False
    earlier = con.execute(
        f"SELECT 1 FROM {suite.table} WHERE {suite.month_column} < DATE '{parse_month(first_month)}' LIMIT 1"
    ).fetchall()
    return not earlier


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict]:
    cursor = con.execute(f"SELECT * FROM ({sql}) LIMIT {SAMPLE_SIZE}")
    names = [d[0] for d in cursor.description]
    return [
        {n: (v if isinstance(v, int | float | str) or v is None else str(v)) for n, v in zip(names, row, strict=True)}
        for row in cursor.fetchall()
    ]


def _with_row_samples(con, outcome: ExpectationOutcome, config, suite: Suite, query: str) -> ExpectationOutcome:
    """GX's summary of an unexpected-rows expectation has the count only: add a few of the rows. A
    profile's count names the failing months; their rows that break the rule are read then, and
    only then."""
    if outcome.success or outcome.samples or outcome.error or config.type != "unexpected_rows_expectation":
        return outcome
    sql = config.kwargs["unexpected_rows_query"].replace("{batch}", f"({query}) AS subselect")
    if not (shown := config.meta.get("rows_query")):
        return ExpectationOutcome(**{**outcome.__dict__, "samples": _rows(con, sql)})
    failing = con.execute(f"SELECT month, unexpected_rows FROM ({sql})").fetchall()
    months = ", ".join(f"DATE '{parse_month(month).isoformat()}'" for month, _ in failing)
    rows = f"SELECT * FROM {suite.table} WHERE {suite.month_column} IN ({months})"
    return ExpectationOutcome(
        **{
            **outcome.__dict__,
            "unexpected_count": sum(n for _, n in failing),
            "observed": sum(n for _, n in failing),
            "samples": _rows(con, shown.replace("{batch}", f"({rows})")),
        }
    )


def docs_index(quality_dir: Path) -> Path:
    return quality_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"

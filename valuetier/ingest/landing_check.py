"""`valuetier validate-landing`: a whole landing folder checked against the contract and the delivery
mapping before anything is loaded into the warehouse.

It runs the ingestion itself (`ingest.load_month`, the same checks and the same mapping code path)
into a throwaway DuckDB file in a temporary folder, month by month in the pipeline's order, so that
what it reports is what a run would load and quarantine. Files stream in batches and the throwaway
database may spill to its temporary folder: memory stays bounded whatever the file size.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

from valuetier.core.contract import FILE_FORMATS, SOURCE_ORDER, SOURCES, Reason
from valuetier.core.months import add_months, is_month_key, parse_month
from valuetier.core.settings import DuckDBLimits
from valuetier.core.tables import QUARANTINE_TABLE
from valuetier.core.warehouse import pin_time_zone
from valuetier.ingest.loader import DeliveryError, discover_months, find_delivery, load_month
from valuetier.ingest.mapping import Mapping

FIRST_ROWS = 3  # offending rows shown per file and reason


@dataclass(frozen=True)
class FileReport:
    source: str
    month: str
    file: str
    delivered: int = 0
    loaded: int = 0
    quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    first_rows: list[dict] = field(default_factory=list)  # row, reason, column, detail
    other_codes: dict[str, dict[str, int]] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)
    error: str | None = None  # a file-level error: the file cannot be loaded at all


@dataclass(frozen=True)
class LandingReport:
    landing: str
    mapping: str
    months: list[str]
    files: list[FileReport]
    errors: list[str]  # file-level errors, file names that are not months, months missing a required source

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def misnamed_files(landing: Path) -> list[str]:
    """Files in a source folder whose name is not a month (YYYY-MM.parquet or .csv)."""
    problems = []
    for source in SOURCE_ORDER:
        folder = landing / source
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if not (is_month_key(path.stem) and path.suffix.lstrip(".") in FILE_FORMATS):
                problems.append(
                    f"{path}: the file name is not a month (YYYY-MM.parquet or YYYY-MM.csv); it is not read"
                )
    return problems


def missing_months(landing: Path, months: list[str]) -> list[str]:
    """Months without a required source: gaps in the transactions files, and deliveries of other
    sources for months that have no transactions file (those months are not processed)."""
    problems = []
    if not months:
        return [f"{landing / 'transactions'}: no transactions files (YYYY-MM.parquet or .csv): nothing to process"]
    month = months[0]
    while month < months[-1]:
        if month not in months:
            problems.append(
                f"{landing / 'transactions'}: no file for {month}, between {months[0]} and {months[-1]}: "
                "that month would not be processed"
            )
        month = add_months(month, 1)
    for source in (s for s in SOURCE_ORDER if s != "transactions"):
        folder = landing / source
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if path.suffix.lstrip(".") in FILE_FORMATS and is_month_key(path.stem) and path.stem not in months:
                    problems.append(f"{path}: no transactions file for {path.stem}, so this delivery is not processed")
    return problems


def _first_rows(con: duckdb.DuckDBPyConnection, source: str, month: str) -> list[dict]:
    rows = con.execute(
        f"""SELECT source_row, reason, column_name, detail FROM {QUARANTINE_TABLE}
            WHERE source = ? AND delivery_month = ?
            QUALIFY row_number() OVER (PARTITION BY reason ORDER BY source_row) <= {FIRST_ROWS}
            ORDER BY reason, source_row""",
        [source, parse_month(month)],
    ).fetchall()
    return [{"row": r, "reason": reason, "column": column, "detail": detail} for r, reason, column, detail in rows]


def validate_landing(
    landing: Path,
    mapping: Mapping,
    progress: Callable[[str], None] = lambda _: None,
    limits: DuckDBLimits | None = None,
) -> LandingReport:
    """`limits`: the settings' DuckDB memory and threads (the throwaway database spills to its own
    temporary folder, whatever their spill folder)."""
    months = discover_months(landing)
    errors = misnamed_files(landing) + missing_months(landing, months)
    files: list[FileReport] = []
    with tempfile.TemporaryDirectory(prefix="valuetier-validate-") as scratch:
        scratch_limits = dataclasses.replace(limits or DuckDBLimits(), temp_directory=scratch)
        con = duckdb.connect(str(Path(scratch) / "check.duckdb"), config=scratch_limits.config())
        pin_time_zone(con)
        con.execute("SET enable_progress_bar = false")
        try:
            for month in months:
                progress(f"checking {month}")
                for source in SOURCE_ORDER:
                    report = _check_file(con, landing, source, month, mapping)
                    if report is not None:
                        files.append(report)
                        if report.error:
                            errors.append(report.error)
        finally:
            con.close()
    errors += [entirely_quarantined(f, files, mapping) for f in files if f.delivered and not f.loaded]
    return LandingReport(str(landing), mapping.described, months, files, errors)


def entirely_quarantined(report: FileReport, files: list[FileReport], mapping: Mapping) -> str:
    """A file none of whose rows would load, with the likely cause: the mapping entry of the column
    most rows fail on, or a parent source that is itself entirely quarantined."""
    reason = max(report.reasons, key=report.reasons.get)
    example = next(r for r in report.first_rows if r["reason"] == reason)
    column = example["column"]
    said = (
        f"{report.file}: all {report.delivered:,} rows would be quarantined ({reason} on {column}: {example['detail']})"
    )
    parent = {Reason.UNKNOWN_CUSTOMER.value: "customers", Reason.UNKNOWN_ACCOUNT.value: "accounts"}.get(reason)
    if parent and any(f.source == parent and f.month == report.month and f.delivered and not f.loaded for f in files):
        return f"{said}; likely cause: every {parent} row of {report.month} is quarantined too (above)"
    source = mapping.source(report.source)
    for key, entry in (
        (f"sources.{report.source}.codes.{column}", column in source.codes),
        (f"sources.{report.source}.columns.{column}", column in source.columns),
    ):
        if entry:
            line = mapping.lines.get(key)
            return (
                f"{said}; likely cause: {mapping.path}{f' line {line}' if line else ''}, {key}: check it against "
                "the delivered values"
            )
    return f"{said}; no mapping entry covers {report.source}.{column}: check the delivered values against the contract"


def _check_file(con, landing: Path, source: str, month: str, mapping: Mapping) -> FileReport | None:
    """One source-month through the real ingestion; None when an optional source has no file."""
    path = None
    try:
        path = find_delivery(landing, source, month)
        result = load_month(con, landing, source, month, mapping=mapping)
    except DeliveryError as exc:
        return FileReport(source, month, str(path or landing / source / f"{month}.*"), error=str(exc))
    if path is None:
        return None if not SOURCES[source].required else FileReport(source, month, "(no file)", error=None)
    return FileReport(
        source,
        month,
        str(path),
        result.delivered,
        result.loaded,
        result.quarantined,
        result.reasons,
        _first_rows(con, source, month) if result.quarantined else [],
        result.other_codes,
        list(result.ignored_columns),
    )


def render(report: LandingReport) -> str:
    """The report as a person reads it: one line a file, its first offending rows, then the errors."""
    lines = [f"landing {report.landing}", f"mapping {report.mapping}", ""]
    for f in report.files:
        name = f"{f.source}/{Path(f.file).name}"
        if f.error:
            lines.append(f"{name:<36} REFUSED")
            continue
        if f.file == "(no file)":
            lines.append(f"{f.source + '/' + f.month:<36} no file: no records changed this month")
            continue
        reasons = ", ".join(f"{r}: {n:,}" for r, n in f.reasons.items())
        lines.append(
            f"{name:<36} delivered {f.delivered:>10,}  loads {f.loaded:>10,}  quarantined {f.quarantined:>8,}"
            + (f"  ({reasons})" if reasons else "")
        )
        for row in f.first_rows:
            lines.append(f"    row {row['row']:<8} {row['reason']:<20} {row['column'] or '':<20} {row['detail'] or ''}")
        for column, codes in f.other_codes.items():
            lines.append(f"    loaded as 'other': {column} " + ", ".join(f"{c} ({n:,})" for c, n in codes.items()))
        if f.ignored_columns:
            lines.append(f"    columns not in the contract (ignored): {', '.join(f.ignored_columns)}")
    delivered = sum(f.delivered for f in report.files)
    loaded = sum(f.loaded for f in report.files)
    lines += [
        "",
        f"{len(report.months)} months ({report.months[0]}..{report.months[-1]})" if report.months else "no months",
        f"{len(report.files)} files: {delivered:,} rows delivered, {loaded:,} would load, "
        f"{delivered - loaded:,} would be quarantined",
    ]
    if report.errors:
        lines += ["", f"{len(report.errors)} error(s):"] + [f"  {e}" for e in report.errors]
    else:
        lines.append("no file-level errors: the landing folder can be loaded")
    return "\n".join(lines)

"""The demo bank's configuration, what a generation reports, and the pieces every part of the
generator shares: Arrow columns from numpy arrays and the file writer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from valuetier.core.contract import FILE_FORMATS, SOURCE_ORDER
from valuetier.core.months import parse_month

EPOCH = date(1970, 1, 1)
US_PER_DAY = 86_400_000_000
ACQUISITIONS = ("steady", "cohorts")
PROFILES = ("contract", "foreign")
COHORT_MONTHS = 3  # with cohort acquisition every customer joins in the first months
MARGIN_COLUMNS = ("fee_income", "net_interest_margin")
DEMOGRAPHIC_COLUMNS = ("birth_date", "income_band")


@dataclass(frozen=True)
class GeneratorConfig:
    customers: int
    months: int
    seed: int
    out: Path
    truth: Path | None = None
    start: str = "2023-01"
    file_format: str = "parquet"
    dirty_rate: float = 0.0
    chunk_size: int = 50_000
    initial_share: float = 0.55  # share of customers who already bank with us in the first month
    # A delivery unlike the demo's: which sources are delivered, with or without margin columns,
    # the contract's names and codes or a foreign bank's (with its mapping file), and customers
    # joining steadily or in cohorts in the first COHORT_MONTHS months.
    sources: tuple[str, ...] = SOURCE_ORDER
    margins: bool = True
    # Customers with or without the demographic columns (birth_date, income_band): a bank that keeps
    # them out of its extracts, whose fairness review cannot show age or income bands.
    demographics: bool = True
    profile: str = "contract"
    acquisition: str = "steady"
    # Monthly growth of every customer's ticket size (inflation, or a bank winning wallet share):
    # a steady trend in the amounts, which monitoring must tell from a broken delivery.
    growth: float = 0.0

    def __post_init__(self) -> None:
        if self.customers < 1 or self.months < 1:
            raise ValueError("--customers and --months must be at least 1")
        if self.file_format not in FILE_FORMATS:
            raise ValueError(f"--format must be one of {FILE_FORMATS}, not {self.file_format!r}")
        if not 0 <= self.dirty_rate < 0.5:
            raise ValueError("--dirty-rate must be in [0, 0.5)")
        if self.chunk_size < 1:
            raise ValueError("chunk size must be at least 1")
        unknown = sorted(set(self.sources) - set(SOURCE_ORDER))
        if unknown or not {"customers", "transactions"} <= set(self.sources):
            raise ValueError(f"--sources must include customers and transactions, from {', '.join(SOURCE_ORDER)}")
        if self.profile not in PROFILES:
            raise ValueError(f"--profile must be one of {PROFILES}, not {self.profile!r}")
        if self.acquisition not in ACQUISITIONS:
            raise ValueError(f"--acquisition must be one of {ACQUISITIONS}, not {self.acquisition!r}")
        if not -0.5 < self.growth < 1:
            raise ValueError("--growth must be in (-0.5, 1): a share of the ticket size per month")
        parse_month(self.start)

    @property
    def truth_dir(self) -> Path:
        return self.truth if self.truth is not None else self.out.parent / "ground_truth"


@dataclass(frozen=True)
class Fault:
    """One injected fault: where it is and the quarantine reason ingestion must give it."""

    source: str
    month: str
    file: str
    row: int | None  # 1-based data row in the written file; None for a whole-file fault
    fault: str
    column: str | None
    expected_reason: str
    rows: int = 1


@dataclass
class GenerationSummary:
    rows: dict[str, int] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    max_chunk_rows: int = 0


def epoch_days(d: date) -> int:
    return (d - EPOCH).days


def ts_array(values_us: np.ndarray) -> pa.Array:
    return pa.array(values_us.astype("int64"), type=pa.int64()).cast(pa.timestamp("us"))


def date_array(days: np.ndarray) -> pa.Array:
    return pa.array(days.astype("int32"), type=pa.int32()).cast(pa.date32())


def optional_ts_array(values_us: np.ndarray, present: np.ndarray) -> pa.Array:
    return pa.array(values_us.astype("int64"), type=pa.int64(), mask=~present).cast(pa.timestamp("us"))


def money_array(values: np.ndarray) -> pa.Array:
    return pa.array(np.round(values.astype("float64"), 2), type=pa.float64())


def id_array(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    return pa.array([f"{prefix}{n:0{width}d}" for n in numbers.tolist()], type=pa.string())


class FileWriter:
    """Streams one source-month file chunk by chunk; schema fixed by the first chunk."""

    def __init__(self, path: Path, file_format: str):
        self.path = path
        self.file_format = file_format
        self.rows = 0
        self._writer: pq.ParquetWriter | pacsv.CSVWriter | None = None

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.file_format == "parquet":
                self._writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
            else:
                self._writer = pacsv.CSVWriter(self.path, table.schema)
        if self.file_format == "parquet":
            self._writer.write_table(table, row_group_size=max(1, table.num_rows))
        else:
            self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

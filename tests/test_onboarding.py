"""A generated bank delivered from a later month on (valuetier.demo.onboarding), as the benchmark
cuts a 12-month history from a 36-month bank: the same new month, file for file, and a first
delivery that loads whole."""

from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from valuetier.core.contract import SOURCES, SourceKind
from valuetier.demo.generator import GeneratorConfig, generate
from valuetier.demo.onboarding import deliveries_from
from valuetier.ingest.landing_check import validate_landing
from valuetier.ingest.mapping import Mapping

MONTHS = 8
FIRST = "2023-05"


def rows_by_key(path: Path, key: str) -> dict[str, dict]:
    table = pq.read_table(path) if path.suffix == ".parquet" else pacsv.read_csv(path)
    return {row[key]: row for row in table.to_pylist()}


@pytest.mark.parametrize("file_format", ["parquet", "csv"])
def test_a_bank_delivered_from_a_later_month_has_the_same_new_months_and_a_whole_first_delivery(tmp_path, file_format):
    whole = tmp_path / "whole"
    generate(
        GeneratorConfig(customers=1500, months=MONTHS, seed=5, out=whole, file_format=file_format),
        progress=lambda _: None,
    )
    cut = tmp_path / "cut"
    months = deliveries_from(whole, FIRST, cut)
    assert months == ["2023-05", "2023-06", "2023-07", "2023-08"]

    for folder in sorted(p for p in whole.iterdir() if p.is_dir()):
        source = SOURCES[folder.name]
        delivered = sorted(p.name for p in (cut / folder.name).iterdir())
        assert delivered == sorted(p.name for p in folder.iterdir() if p.stem >= FIRST), folder.name
        for name in delivered:
            ours, theirs = cut / folder.name / name, folder / name
            if source.kind == SourceKind.ENTITY and ours.stem == FIRST:
                # Every record delivered up to the first month, each as last delivered.
                expected: dict[str, dict] = {}
                for earlier in sorted(p for p in folder.iterdir() if p.stem <= FIRST):
                    expected |= rows_by_key(earlier, source.key)
                assert rows_by_key(ours, source.key) == expected, name
                assert len(expected) > len(rows_by_key(theirs, source.key)), "it carries the earlier deliveries"
            else:
                assert ours.read_bytes() == theirs.read_bytes(), f"{folder.name}/{name} is the bank's own file"

    # The first delivery loads whole: every account and balance names a customer or account
    # delivered by then, so nothing is quarantined where the whole bank quarantines nothing.
    for landing in (whole, cut):
        report = validate_landing(landing, Mapping())
        assert report.ok, report.errors
        assert sum(f.quarantined for f in report.files) == 0, landing.name


def test_a_cut_needs_a_month_the_bank_delivers(tmp_path):
    generate(GeneratorConfig(customers=200, months=3, seed=5, out=tmp_path / "whole"), progress=lambda _: None)
    with pytest.raises(ValueError, match="no transactions file for 2024-01"):
        deliveries_from(tmp_path / "whole", "2024-01", tmp_path / "cut")


def test_a_cut_where_the_bank_delivered_no_customers_that_month_still_carries_them(tmp_path):
    """A cohort bank delivers no customers file in a month without changes: its earlier customers
    still make the first delivery, and every account still names one of them."""
    whole = tmp_path / "whole"
    generate(
        GeneratorConfig(customers=300, months=6, seed=2, out=whole, acquisition="cohorts"), progress=lambda _: None
    )
    quiet = next(m for m in ("2023-04", "2023-05", "2023-06") if not (whole / "customers" / f"{m}.parquet").exists())
    cut = tmp_path / "cut"
    deliveries_from(whole, quiet, cut)
    delivered: dict[str, dict] = {}
    for earlier in sorted(p for p in (whole / "customers").iterdir() if p.stem <= quiet):
        delivered |= rows_by_key(earlier, "customer_id")
    assert rows_by_key(cut / "customers" / f"{quiet}.parquet", "customer_id") == delivered
    report = validate_landing(cut, Mapping())
    assert report.ok, report.errors
    assert sum(f.quarantined for f in report.files) == 0

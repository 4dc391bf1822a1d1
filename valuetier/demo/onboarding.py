"""A bank that starts delivering to ValueTier later in its life: the deliveries of a generated bank
from one month on, as a bank's first extracts to a new installation look.

Its first delivery of an entity source (customers, accounts) carries every record delivered up to
then, each in its latest version (the contract's "latest delivery wins"); every other file from that
month on is the longer bank's own, linked, not copied.

Why: two histories of different lengths whose new month is the same files. The benchmark times a
new month after 12 and after 36 months of history like for like (issue 32): cut from a 37-month
bank at month 25, the 12-month bank's new month has exactly the 36-month bank's customers and
transactions, where a bank generated for 13 months has fewer customers who transact less.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from valuetier.core.contract import FILE_FORMATS, SOURCES, SourceKind
from valuetier.core.months import parse_month
from valuetier.ingest.loader import discover_months


def deliveries_from(landing: Path, first_month: str, out: Path) -> list[str]:
    """Write to `out` the landing folder of the bank in `landing` as it delivers from `first_month`
    on; the months delivered. The files before it fold into the first month's entity files."""
    parse_month(first_month)
    months = [m for m in discover_months(landing) if m >= first_month]
    if not months or months[0] != first_month:
        raise ValueError(f"{landing} has no transactions file for {first_month}: no month to start delivering from")
    if (landing / "mapping.yml").exists():
        raise ValueError(f"{landing} is delivered under a mapping (foreign names and codes): cut the contract's bank")
    for folder in sorted(p for p in landing.iterdir() if p.is_dir()):
        source = SOURCES.get(folder.name)
        target = out / folder.name
        target.mkdir(parents=True, exist_ok=True)
        files = {p.stem: p for p in folder.iterdir() if p.suffix.lstrip(".") in FILE_FORMATS}
        linked = [m for m in sorted(files) if m >= first_month]
        if source is not None and source.kind == SourceKind.ENTITY:
            # Folded even where the source has no file of the first month (no changes that month:
            # a cohort bank's customers), else every record delivered before would be lost.
            earlier = [files[m] for m in sorted(files) if m <= first_month]
            if earlier:
                first_file = target / f"{first_month}{earlier[-1].suffix}"
                _write_like(earlier[-1], _latest_versions(earlier, source.key), first_file)
            linked = [m for m in linked if m > first_month]
        for month in linked:
            os.symlink(files[month].resolve(), target / files[month].name)
    return months


def _read(path: Path) -> pa.Table:
    if path.suffix == ".parquet":
        return pq.read_table(path)
    # Every column as text (an empty field as null): the rows are written back as delivered, nothing re-typed.
    with path.open(newline="", encoding="utf-8") as file:
        names = next(csv.reader(file))
    types = {name: pa.string() for name in names}
    return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True))


def _latest_versions(paths: list[Path], key: str) -> pa.Table:
    """The rows of the monthly files `paths` (oldest first), each key's row from its latest file."""
    tables = [_read(p) for p in paths]
    combined = pa.concat_tables(tables, promote_options="permissive")
    order = pa.array(range(len(combined)))
    latest = (
        pa.table({"key": combined[key], "row": order}).group_by("key", use_threads=False).aggregate([("row", "max")])
    )
    keep = pc.sort_indices(latest["row_max"])
    return combined.take(pc.take(latest["row_max"], keep))


def _write_like(model: Path, table: pa.Table, path: Path) -> None:
    """`table` in the format of the file `model`."""
    if model.suffix == ".parquet":
        pq.write_table(table.cast(pq.read_schema(model)), path)
    else:
        pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(quoting_style="needed"))

"""The shape every month-partitioned Python asset shares, written once.

- `monthly_asset`: the decorator. Partitioned by month, a backfill of many months is one run that
  loops over them in order (single_run), and the step holds the warehouse pool.
- `rules_from`: a launchpad config copied into the domain's rules dataclass.
- `each_month`: the loop. One warehouse connection, the months in order, a domain error turned into
  a dg.Failure that says what to fix, and the flow metadata (rows in, rows out, seconds).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TypeVar

import dagster as dg
import duckdb

from orchestration.flow import flow_metadata
from orchestration.partitions import WAREHOUSE_POOL, month_partitions, single_run
from orchestration.resources import WarehouseResource

R = TypeVar("R")
Rules = TypeVar("Rules")


def monthly_asset(**asset_args) -> Callable:
    """dg.asset for a month-partitioned asset that writes the warehouse."""
    return dg.asset(partitions_def=month_partitions, backfill_policy=single_run, pool=WAREHOUSE_POOL, **asset_args)


def rules_from(config: dg.Config, rules: type[Rules], **renamed: str) -> Rules:
    """The rules dataclass with each field the config offers taken from it: the config field of the
    same name, or of the name `renamed` gives (rules field = config field). The rules' other fields
    keep their defaults: they are not offered in the launchpad."""
    offered = type(config).model_fields
    unknown = sorted(set(renamed.values()) - set(offered))
    if unknown:
        raise TypeError(f"{type(config).__name__} has no field {', '.join(unknown)}")
    names = {f.name: renamed.get(f.name, f.name) for f in dataclasses.fields(rules)}
    return rules(**{field: getattr(config, name) for field, name in names.items() if name in offered})


def each_month(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    step: Callable[[duckdb.DuckDBPyConnection, str], R],
    *,
    failures: tuple[type[Exception], ...] = (),
    failure_prefix: str = "",
    rows_in: Callable[[list[R]], int] | None = None,
    rows_out: Callable[[list[R]], int] | None = None,
) -> tuple[list[R], dict[str, dg.MetadataValue]]:
    """`step(con, month)` for each of the run's months in order: the results and the flow metadata.
    An exception of a `failures` type fails the step with its message (after `failure_prefix`)."""
    started, results = time.perf_counter(), []
    with warehouse.connect() as con:
        for month in sorted(context.partition_keys):
            try:
                results.append(step(con, month))
            except failures as exc:
                raise dg.Failure(description=f"{failure_prefix}{exc}") from exc
        flow = flow_metadata(
            context,
            con,
            started,
            rows_in=rows_in(results) if rows_in else None,
            rows_out=rows_out(results) if rows_out else None,
        )
    return results, flow

"""The marts BI reads, published after each month's run outside the warehouse (valuetier/application/publish.py):
a read-only DuckDB file and Parquet by month, swapped in whole, so BI reads while the next run writes."""

import time

import dagster as dg

from orchestration.flow import flow_metadata, rows_of
from orchestration.partitions import WAREHOUSE_POOL, month_partitions, single_run
from orchestration.resources import ValueTierSettings
from valuetier.application.publish import PUBLISHED_MARTS, PublishError, publish
from valuetier.core.warehouse import connect

PUBLISHED = dg.AssetKey(["published", "bi_marts"])


@dg.asset(
    key=PUBLISHED,
    description="What BI tools and notebooks read while the pipeline writes: "
    + ", ".join(m.name for m in PUBLISHED_MARTS)
    + " as a read-only DuckDB file (published/valuetier.duckdb beside the warehouse) and as Parquet by month "
    "(published/current/<mart>/month=YYYY-MM/data.parquet). Each run's months are swapped in whole; a failed "
    "publish leaves the previous one.",
    group_name="published",
    kinds={"duckdb", "parquet"},
    deps=[dg.AssetKey(m.name.split(".")) for m in PUBLISHED_MARTS],
    partitions_def=month_partitions,
    backfill_policy=single_run,
    pool=WAREHOUSE_POOL,
)
def bi_marts(context: dg.AssetExecutionContext, valuetier: ValueTierSettings) -> dg.MaterializeResult:
    started, current = time.perf_counter(), valuetier.current
    try:
        result = publish(
            current.warehouse_path,
            current.published_dir,
            context.partition_keys,
            limits=current.duckdb,
            staged=lambda: valuetier.pause("publishing"),
        )
    except PublishError as exc:
        raise dg.Failure(description=str(exc)) from exc
    marts = context.assets_def.asset_deps[PUBLISHED]
    # In: the marts' rows of the run's months in the warehouse; out: the same months in the published file.
    with connect(result.duckdb_file, read_only=True, limits=current.duckdb) as published:
        published_rows = rows_of(published, marts, context.partition_key_range)
    with connect(current.warehouse_path, read_only=True, limits=current.duckdb) as con:
        flow = flow_metadata(context, con, started, rows_out=published_rows)
    context.log.info(f"published snapshot {result.version}: {result.duckdb_file}")
    return dg.MaterializeResult(
        metadata={
            "version": result.version,
            "duckdb_file": dg.MetadataValue.path(str(result.duckdb_file)),
            "parquet_dir": dg.MetadataValue.path(str(result.parquet_dir)),
            "rows": dg.MetadataValue.json(result.rows),
            "months_written": dg.MetadataValue.json(result.months_written),
            "pruned_versions": dg.MetadataValue.json(result.pruned),
            **flow,
        }
    )

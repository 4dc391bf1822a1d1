"""The monthly HTML report (valuetier/application/report.py), written after the evaluation and the monitoring."""

import time

import dagster as dg

from orchestration.flow import flow_metadata
from orchestration.monitoring import ALERTS, DRIFT
from orchestration.partitions import WAREHOUSE_POOL, month_partitions, single_run
from orchestration.resources import WarehouseResource, settings
from orchestration.scoring import TIERS
from valuetier.application.publish import PUBLISHED_MARTS
from valuetier.application.report import write_report

REPORT = dg.AssetKey(["published", "monthly_report"])


@dg.asset(
    key=REPORT,
    description="A self-contained HTML report per month (reports/valuetier-report-YYYY-MM.html beside the "
    "warehouse; inline SVG charts, nothing fetched when it opens): tier sizes and value shares, retention and "
    "conversion by tier, migration, ROI, model quality against RFM, drift and alerts.",
    group_name="published",
    kinds={"html"},
    deps=[TIERS, ALERTS, DRIFT, *(dg.AssetKey(m.name.split(".")) for m in PUBLISHED_MARTS if m.schema == "evaluation")],
    partitions_def=month_partitions,
    backfill_policy=single_run,
    pool=WAREHOUSE_POOL,
)
def monthly_report(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    started, reports_dir = time.perf_counter(), settings().reports_dir
    with warehouse.connect() as con:
        results = [write_report(con, month, reports_dir) for month in sorted(context.partition_keys)]
        flow = flow_metadata(context, con, started, rows_out=len(results))  # out: one report a month
    latest = results[-1]
    context.log.info(f"report {latest.month}: {latest.path} ({latest.charts} charts)")
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.path(str(latest.path)),
            "open_report": dg.MetadataValue.url(latest.path.as_uri()),
            "key_figures": dg.MetadataValue.md(latest.markdown()),
            "charts": dg.MetadataValue.int(latest.charts),
            "reports_written": dg.MetadataValue.int(len(results)),
            **flow,
        }
    )

"""The monthly HTML report (valuetier/application/report.py), written after the evaluation and the monitoring."""

import dagster as dg

from orchestration.monitoring import ALERTS, DRIFT
from orchestration.monthly import each_month, monthly_asset
from orchestration.resources import ValueTierSettings, WarehouseResource
from orchestration.scoring import TIERS
from valuetier.application.publish import PUBLISHED_MARTS
from valuetier.application.report import write_report

REPORT = dg.AssetKey(["published", "monthly_report"])


@monthly_asset(
    key=REPORT,
    description="A self-contained HTML report per month (reports/valuetier-report-YYYY-MM.html beside the "
    "warehouse; inline SVG charts, nothing fetched when it opens): tier sizes and value shares, retention and "
    "conversion by tier, migration, ROI, model quality against RFM, drift and alerts.",
    group_name="published",
    kinds={"html"},
    deps=[TIERS, ALERTS, DRIFT, *(dg.AssetKey(m.name.split(".")) for m in PUBLISHED_MARTS if m.schema == "evaluation")],
)
def monthly_report(
    context: dg.AssetExecutionContext, valuetier: ValueTierSettings, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    reports_dir = valuetier.current.reports_dir
    results, flow = each_month(
        context,
        warehouse,
        lambda con, month: write_report(con, month, reports_dir),
        rows_out=len,  # a report a month
    )
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

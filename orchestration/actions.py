"""The CRM's monthly actions: the playbook (playbook.yml) applied to every tiered customer."""

import time

import dagster as dg

from orchestration.dbt import INDICATORS
from orchestration.flow import flow_metadata
from orchestration.partitions import WAREHOUSE_POOL, month_partitions, single_run
from orchestration.resources import WarehouseResource, settings
from orchestration.scoring import TIERS
from valuetier.application.playbook import PlaybookError, build_crm_actions, load_playbook
from valuetier.core.tables import CRM_ACTIONS_TABLE

CRM_ACTIONS = dg.AssetKey(CRM_ACTIONS_TABLE.split("."))


@dg.asset(
    key=CRM_ACTIONS,
    description="One row per tiered customer and month for the CRM: the playbook's service level, preferred "
    "channel, pricing treatment and contact cap for the customer's action segment and tier, and the next best "
    "product (of the rule's offer, the one the customer lacks that most customers of the same tier and segment "
    "hold). No personal data: the customer id only.",
    group_name="marts",
    kinds={"duckdb", "python"},
    deps=[TIERS, INDICATORS],
    partitions_def=month_partitions,
    backfill_policy=single_run,
    pool=WAREHOUSE_POOL,
)
def crm_actions(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    current = settings()
    try:
        playbook = load_playbook(current.playbook_file)
    except (PlaybookError, OSError) as exc:
        raise dg.Failure(description=f"the playbook cannot be used: {exc}") from exc
    started, results = time.perf_counter(), []
    with warehouse.connect() as con:
        for month in sorted(context.partition_keys):
            try:
                result = build_crm_actions(con, month, playbook)
            except PlaybookError as exc:
                raise dg.Failure(description=str(exc)) from exc
            context.log.info(
                f"crm_actions {month}: {result.customers:,} customers, {result.with_product:,} with a next best "
                f"product, service levels {result.by_service_level}"
            )
            results.append(result)
        flow = flow_metadata(context, con, started)
    latest = results[-1]
    return dg.MaterializeResult(
        metadata={
            "playbook": dg.MetadataValue.path(str(playbook.path)),
            "playbook_sha256": playbook.sha256,
            "rules": dg.MetadataValue.int(len(playbook.rules)),
            "customers": dg.MetadataValue.int(sum(r.customers for r in results)),
            "latest_month": latest.month,
            "latest_service_levels": dg.MetadataValue.json(latest.by_service_level),
            "latest_with_next_best_product": dg.MetadataValue.int(latest.with_product),
            **flow,
        }
    )

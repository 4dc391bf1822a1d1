"""The CRM's monthly actions: the playbook (playbook.yml) applied to every tiered customer."""

import dagster as dg

from orchestration.dbt import INDICATORS
from orchestration.monthly import each_month, monthly_asset
from orchestration.resources import ValueTierSettings, WarehouseResource
from orchestration.scoring import TIERS
from orchestration.uplift import UPLIFT
from valuetier.application.playbook import PlaybookError, build_crm_actions, load_playbook
from valuetier.core.tables import CRM_ACTIONS_TABLE

CRM_ACTIONS = dg.AssetKey(CRM_ACTIONS_TABLE.split("."))


@monthly_asset(
    key=CRM_ACTIONS,
    description="One row per tiered customer and month for the CRM: the playbook's service level, preferred "
    "channel, pricing treatment and contact cap for the customer's action segment and tier, and the next best "
    "product (of the rule's offer, the one the customer lacks that most customers of the same tier and segment "
    "hold), with a contact priority within the caps: by the predicted uplift of that product where the month has "
    "an uplift model, else by the tier rule. No personal data: the customer id only.",
    group_name="marts",
    kinds={"duckdb", "python"},
    deps=[TIERS, INDICATORS, UPLIFT],
)
def crm_actions(
    context: dg.AssetExecutionContext, valuetier: ValueTierSettings, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    try:
        playbook = load_playbook(valuetier.current.playbook_file)
    except (PlaybookError, OSError) as exc:
        raise dg.Failure(description=f"the playbook cannot be used: {exc}") from exc

    def month_actions(con, month: str):
        result = build_crm_actions(con, month, playbook)
        context.log.info(
            f"crm_actions {month}: {result.customers:,} customers, {result.with_product:,} with a next best "
            f"product, service levels {result.by_service_level}; {result.contactable:,} to contact, prioritised by "
            f"{result.priority_basis}"
        )
        return result

    results, flow = each_month(context, warehouse, month_actions, failures=(PlaybookError,))
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
            "latest_contactable": dg.MetadataValue.int(latest.contactable),
            "latest_priority_basis": latest.priority_basis,
            **flow,
        }
    )

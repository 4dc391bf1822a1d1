"""Who answers for each asset and which code made it: owners and code versions on every asset, so
the UI shows a newcomer whom to ask and marks an asset stale when the code behind it changes.
dbt's models carry dagster-dbt's own code version (a checksum of their SQL)."""

import hashlib
from functools import cache
from importlib import import_module
from pathlib import Path

import dagster as dg

OWNERS = ["team:valuetier-data"]  # a Dagster owner: a team, or people's e-mail addresses

# The domain modules behind each Python asset (by key, or by key prefix): their source is its code.
DOMAIN_MODULES = {
    "raw": ("core.contract", "ingest.loader", "ingest.mapping"),
    "marts/customer_clv_monthly": ("clv.model", "clv.estimates"),
    "marts/customer_tiers": ("tiering.scoring", "tiering.training", "tiering.tree_ensemble", "core.value_measure"),
    "marts/crm_actions": ("application.playbook",),
    "marts/customer_uplift_monthly": ("tiering.uplift", "tiering.training"),
    "marts/customer_tiers_challenger": ("tiering.challenger", "tiering.scoring"),
    "monitoring": ("application.monitoring", "application.notify"),
    "published/bi_marts": ("application.publish",),
    "published/monthly_report": ("application.report", "application.charts"),
    "model/tiering_model": ("tiering.training_cycle", "tiering.training", "tiering.registry", "tiering.metrics"),
}


@cache
def code_version(modules: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for name in modules:
        digest.update(Path(import_module(f"valuetier.{name}").__file__).read_bytes())
    return digest.hexdigest()[:12]


def described(spec: dg.AssetSpec) -> dg.AssetSpec:
    key = spec.key.to_user_string()
    modules = DOMAIN_MODULES.get(key) or DOMAIN_MODULES.get(key.split("/")[0])
    version = spec.code_version or (code_version(modules) if modules else None)
    return spec.replace_attributes(owners=spec.owners or OWNERS, code_version=version)

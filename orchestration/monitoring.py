"""Monitoring of every scored month (valuetier/application/monitoring.py): drift and alerts written to the
warehouse, two checks that turn red in Dagster when a month's delivery looks broken (an error, or a
delivery warning), and the notifier that sends the alerts on (a JSON-lines file, or a webhook when
VALUETIER_ALERT_WEBHOOK is set). A population that moved away from the champion's training window
is a warning that asks for a retraining: in the alerts, the report and the run's summary, not a
failed check."""

import time

import dagster as dg
from pydantic import Field

from orchestration.dbt import INDICATORS
from orchestration.flow import flow_metadata
from orchestration.monthly import rules_from
from orchestration.partitions import WAREHOUSE_POOL, month_partitions, single_run
from orchestration.resources import ValueTierSettings, WarehouseResource
from orchestration.scoring import TIERS
from valuetier.application.monitoring import (
    ALERTS_TABLE,
    DELIVERY_KINDS,
    DRIFT_TABLE,
    SEVERITIES,
    MonitoringRules,
    monitor_month,
)
from valuetier.application.notify import NotifyError, notifier
from valuetier.core.months import parse_month
from valuetier.core.tables import FAIRNESS_TABLE
from valuetier.tiering.registry import Registry

DRIFT = dg.AssetKey(DRIFT_TABLE.split("."))
ALERTS = dg.AssetKey(ALERTS_TABLE.split("."))
DEFAULTS = MonitoringRules()


class MonitoringConfig(dg.Config):
    psi_warning: float = Field(
        default=DEFAULTS.psi_warning,
        description=(
            "PSI against the recent months from which a delivered column or steady indicator has shifted "
            "moderately (a delivery warning)."
        ),
    )
    psi_error: float = Field(
        default=DEFAULTS.psi_error,
        description="PSI against the recent months from which the shift is major (a delivery error).",
    )
    recent_months: int = Field(
        default=DEFAULTS.recent_months,
        description="Months delivered just before a month that its delivery is compared with.",
    )
    population_psi: float = Field(
        default=DEFAULTS.population_psi,
        description=(
            "PSI against the champion's training months from which the population has moved (a warning: retrain)."
        ),
    )
    tier_share_shift: float = Field(
        default=DEFAULTS.tier_share_shift,
        description="Absolute change of a tier's share of customers from the previous month that is a warning.",
    )
    late_file_hours: float = Field(
        default=DEFAULTS.late_file_hours,
        description="Hours after the month's first file from which a source's file is late.",
    )
    notify_from: str = Field(
        default="warning", description="The lowest severity sent to the notifier (info, warning or error)."
    )


FAIRNESS = dg.AssetKey(FAIRNESS_TABLE.split("."))


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            DRIFT,
            description="Population stability index of each scored month: every watched delivered column and steady "
            "indicator against the recent months (measure delivery), every indicator the model reads and predicted "
            "value against the champion's training months (measure population).",
            group_name="monitoring",
            kinds={"duckdb", "python"},
            deps=[TIERS, INDICATORS],
        ),
        dg.AssetSpec(
            ALERTS,
            description="The month's alerts, each with a severity (info, warning, error) and a reason: a delivery that "
            "looks broken (a sudden shift, a missing or late file), a population that moved away from the champion's "
            "training window (retrain), tier-share shifts, protected groups given a pricing or service action at "
            "under the four-fifths of the most favoured group's rate (evaluation.eval_tier_fairness_monthly), and "
            "high-tier customers at risk of churn.",
            group_name="monitoring",
            kinds={"duckdb", "python"},
            deps=[DRIFT, FAIRNESS],
        ),
    ],
    partitions_def=month_partitions,
    backfill_policy=single_run,
    pool=WAREHOUSE_POOL,
)
def monitoring(
    context: dg.AssetExecutionContext,
    config: MonitoringConfig,
    valuetier: ValueTierSettings,
    warehouse: WarehouseResource,
):
    current = valuetier.current
    if config.notify_from not in SEVERITIES:
        raise dg.Failure(description=f"notify_from must be one of {', '.join(SEVERITIES)}, not {config.notify_from!r}")
    rules = rules_from(config, MonitoringRules)
    registry = Registry(current.models_dir)
    champion = registry.champion_version()
    training_months = registry.card(champion).training_months if champion else None
    send = notifier(current.alert_webhook_url, current.alerts_file)
    started, results, notified, failed = time.perf_counter(), [], [], []
    with warehouse.connect() as con:
        for month in sorted(context.partition_keys):
            result = monitor_month(con, month, training_months, current.landing_dir, rules)
            results.append(result)
            kinds: dict[str, int] = {}
            for alert in result.at_least("warning"):
                kinds[alert.kind] = kinds.get(alert.kind, 0) + 1
            # One line a month: the alerts themselves are in monitoring.alerts and the checks' metadata.
            log = context.log.warning if kinds else context.log.info
            log(
                f"monitoring {month}: delivery {result.count('error', 'delivery')} errors, "
                f"{result.count('warning', 'delivery')} warnings; population {result.count('warning', 'population')} "
                f"warnings; fairness {result.count('warning', 'fairness')} warnings"
                + (f" ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))})" if kinds else "")
                + f"; population against {result.reference or 'no champion yet'}"
            )
            outgoing = [a.as_dict() for a in result.at_least(config.notify_from)]
            if outgoing:
                try:
                    notified.append(send.notify(month, outgoing))
                except NotifyError as exc:
                    context.log.error(str(exc))
                    failed.append(str(exc))
        flows = {key: flow_metadata(context, con, started, key=key) for key in (DRIFT, ALERTS)}
    latest = results[-1]
    yield dg.MaterializeResult(
        asset_key=DRIFT,
        metadata={
            "latest_month": latest.month,
            "training_months_reference": latest.reference or "none (no champion)",
            "largest_psi": dg.MetadataValue.md(_largest_psi_table(latest)),
            **flows[DRIFT],
        },
    )
    yield dg.MaterializeResult(
        asset_key=ALERTS,
        metadata={
            "latest_month": latest.month,
            **{f"latest_{s}s": dg.MetadataValue.int(latest.count(s)) for s in SEVERITIES},
            "alerts_by_month": dg.MetadataValue.json({r.month: {s: r.count(s) for s in SEVERITIES} for r in results}),
            "latest_alerts": dg.MetadataValue.md(_alerts_table(latest)),
            "notified": dg.MetadataValue.json(sorted(set(notified))),
            "notify_failures": dg.MetadataValue.json(failed),
            **flows[ALERTS],
        },
    )


def _largest_psi_table(result) -> str:
    rows = sorted(result.drift, key=lambda d: -d.psi)[:10]
    return "| measure | subject | PSI |\n|---|---|---|\n" + "".join(
        f"| {d.measure} | {d.subject} | {d.psi:.3f} |\n" for d in rows
    )


def _alerts_table(result) -> str:
    shown = result.at_least("warning")[:20]
    if not shown:
        return f"No warnings or errors for {result.month}."
    return "| severity | kind | subject | reason |\n|---|---|---|---|\n" + "".join(
        f"| {a.severity} | {a.kind} | {a.subject} | {a.reason} |\n" for a in shown
    )


def _alerts_check(severity: str, kinds: tuple[str, ...] | None, name: str, what: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=ALERTS,
        name=name,
        description=f"Fails with {severity.upper()} severity when a month of the run has {what}; the "
        "check's metadata lists them with their reasons (the full list is the monitoring.alerts table).",
        blocking=False,
        partitions_def=month_partitions,
        pool=WAREHOUSE_POOL,
    )
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        months = context.partition_key_range
        with warehouse.connect() as con:
            found = con.execute(
                f"""SELECT strftime(month_start, '%Y-%m'), kind, subject, reason FROM {ALERTS_TABLE}
                    WHERE severity = ? AND month_start BETWEEN ? AND ? AND (? OR list_contains(?, kind))
                    ORDER BY ALL""",
                [severity, parse_month(months.start), parse_month(months.end), kinds is None, list(kinds or ())],
            ).fetchall()
        return dg.AssetCheckResult(
            passed=not found,
            severity=dg.AssetCheckSeverity.ERROR if severity == "error" else dg.AssetCheckSeverity.WARN,
            description=f"{len(found)} {what} in {months.start}..{months.end}"
            + (f"; first: {found[0][1]} {found[0][2]}: {found[0][3]}" if found else ""),
            metadata={
                "alerts": dg.MetadataValue.int(len(found)),
                "by_kind": dg.MetadataValue.json(_by_kind(found)),
                "first_alerts": dg.MetadataValue.json([list(r) for r in found[:20]]),
            },
        )

    return _check


def _by_kind(found) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for _, kind, _, _ in found:
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


alert_checks = [
    _alerts_check("error", None, "no_error_alerts", "error alerts (only a broken delivery raises one)"),
    _alerts_check(
        "warning", DELIVERY_KINDS, "no_delivery_warnings", "delivery warnings (a moderate shift, a late file)"
    ),
]

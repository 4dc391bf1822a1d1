"""Ingestion assets (one per raw source) and the sensor that notices new months in the landing folder."""

import dagster as dg

from orchestration.monthly import each_month, monthly_asset
from orchestration.partitions import month_partitions
from orchestration.resources import ValueTierSettings, WarehouseResource
from valuetier.core.contract import SOURCES, Source
from valuetier.ingest.loader import DeliveryError, LoadResult, discover_months, load_month
from valuetier.ingest.mapping import Mapping, MappingError, load_mapping, mapping_in_force
from valuetier.quality.suites import all_suites, profile_months


def raw_key(source: str) -> dg.AssetKey:
    return dg.AssetKey(["raw", source])


def ingestion_metadata(results: list[LoadResult], mapping: Mapping) -> dict:
    delivered = sum(r.delivered for r in results)
    loaded = sum(r.loaded for r in results)
    quarantined = sum(r.quarantined for r in results)
    reasons: dict[str, int] = {}
    for r in results:
        for reason, n in r.reasons.items():
            reasons[reason] = reasons.get(reason, 0) + n
    other: dict[str, dict[str, int]] = {}
    for r in results:
        for column, codes in r.other_codes.items():
            counts = other.setdefault(column, {})
            for code, n in codes.items():
                counts[code] = counts.get(code, 0) + n
    rows = "\n".join(
        f"| {r.month} | {r.delivered} | {r.loaded} | {r.quarantined} | "
        f"{', '.join(f'{k}: {v}' for k, v in r.reasons.items()) or (r.skipped or '')} |"
        for r in results
    )
    return {
        "delivered": dg.MetadataValue.int(delivered),
        "loaded": dg.MetadataValue.int(loaded),
        "quarantined": dg.MetadataValue.int(quarantined),
        "quarantine_reasons": dg.MetadataValue.json(reasons),
        "skipped_months": dg.MetadataValue.json([r.month for r in results if r.skipped]),
        "mapping": mapping.described,
        "codes_loaded_as_other": dg.MetadataValue.json(other),
        "months": dg.MetadataValue.md(
            "| month | delivered | loaded | quarantined | reasons / note |\n|---|---|---|---|---|\n" + rows
        ),
    }


# The suites checked on month profiles, by the raw table they check: a month's profile is written in
# the transaction that loads it (valuetier.quality.profiles).
PROFILED_SUITES = {suite.table: suite for suite in all_suites() if suite.profiled}


def build_ingestion_asset(source: Source) -> dg.AssetsDefinition:
    suite = PROFILED_SUITES.get(f"raw.{source.name}")
    profile = (lambda con, month: profile_months(con, suite, [month])) if suite else None

    @monthly_asset(
        key=raw_key(source.name),
        description=f"Contract-checked rows of the bank's {source.name} deliveries "
        f"({'required' if source.required else 'optional'} source, {source.kind.value}); invalid rows go to "
        "raw_quarantine.quarantined_rows with a reason.",
        group_name="raw",
        kinds={"duckdb", "python"},
        deps=[raw_key(d) for d in source.depends_on],
    )
    def _ingest(
        context: dg.AssetExecutionContext, valuetier: ValueTierSettings, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        current = valuetier.current
        try:
            mapping = load_mapping(mapping_in_force(current.mapping_file, current.landing_dir))
        except MappingError as exc:
            raise dg.Failure(description=str(exc)) from exc

        def month_rows(con, month: str) -> LoadResult:
            result = load_month(
                con,
                current.landing_dir,
                source.name,
                month,
                mapping=mapping,
                progress=context.log.info,
                pii_key=current.pii_key,
                after_load=profile,
            )
            context.log.info(
                result.skipped
                or f"{source.name} {month}: delivered {result.delivered}, loaded {result.loaded}, "
                f"quarantined {result.quarantined} {result.reasons or ''}"
            )
            if source.name == "transactions":
                valuetier.pause("ingestion")  # the stage's first month written
            return result

        results, flow = each_month(
            context,
            warehouse,
            month_rows,
            failures=(DeliveryError,),
            rows_in=lambda done: sum(r.delivered for r in done),
            rows_out=lambda done: sum(r.loaded for r in done),
        )
        return dg.MaterializeResult(metadata={**ingestion_metadata(results, mapping), **flow})

    return _ingest


ingestion_assets = [build_ingestion_asset(source) for source in SOURCES.values()]

# Written by every ingestion asset in the transaction that loads a month; read by dbt's
# quarantine_summary. Declared so the lineage shows it with the raw assets.
quarantine_table = dg.AssetSpec(
    key=["raw_quarantine", "quarantined_rows"],
    description="Delivered rows that failed the contract: source, month, file, row, reason code, column, detail "
    "and the raw values. `valuetier quarantine list --month YYYY-MM` prints a month's.",
    group_name="raw",
    kinds={"duckdb"},
    partitions_def=month_partitions,
)


@dg.sensor(
    name="new_month_sensor",
    description="Adds a month partition for every new transactions file in the landing folder and runs it.",
    minimum_interval_seconds=60,
    job_name="monthly_pipeline",
)
def new_month_sensor(context: dg.SensorEvaluationContext, valuetier: ValueTierSettings) -> dg.SensorResult:
    known = set(context.instance.get_dynamic_partitions(month_partitions.name))
    new = [m for m in discover_months(valuetier.current.landing_dir) if m not in known]
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"month-{m}", partition_key=m) for m in new],
        dynamic_partitions_requests=[month_partitions.build_add_request(new)] if new else [],
    )

"""Monthly partitions. Months are those with a transactions delivery, so they are added as files land."""

import dagster as dg

month_partitions = dg.DynamicPartitionsDefinition(name="month")

# A backfill of many months runs as one run: each asset loops over the months in order, which
# keeps DuckDB's single writer busy with one step at a time and avoids a dbt start per month.
single_run = dg.BackfillPolicy.single_run()

# Every asset that writes the warehouse takes a slot in this pool (limit 1 in dagster.yaml).
WAREHOUSE_POOL = "duckdb"

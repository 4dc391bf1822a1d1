-- The processed months: those with a transactions delivery (the raw data contract). A table, not
-- a view: many models and the Python steps read it, and each read of a view would scan every
-- transaction again.
{{ config(materialized='table') }}

select distinct
    month_start,
    cast({{ dbt.last_day('month_start', 'month') }} as date) as month_end
from {{ ref('stg_transactions') }}

-- The processed months as the evaluation counts them: each month's position in processed order,
-- how many processed months follow it (how far its outcome windows reach), and whether its tiers
-- rank profit (the month's value measure, var value_measure). A table: every evaluation model
-- reads it, and the value measure looks through the transactions.
{{ config(materialized='table') }}

select
    processed.month_start,
    row_number() over (order by processed.month_start) as month_index,
    count(*) over () - row_number() over (order by processed.month_start) as months_after,
    {{ uses_profit_measure('processed.month_start') }} as uses_profit
from {{ ref('int_months') }} as processed

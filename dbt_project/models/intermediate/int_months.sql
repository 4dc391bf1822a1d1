-- The processed months: those with a transactions delivery (the raw data contract).
select distinct
    month_start,
    cast({{ dbt.last_day('month_start', 'month') }} as date) as month_end
from {{ ref('stg_transactions') }}

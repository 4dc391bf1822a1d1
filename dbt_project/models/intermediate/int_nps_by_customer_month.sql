{{ incremental_by_month() }}
-- The last NPS answer of each customer in each month.
select
    customer_id,
    month_start,
    count(*) as nps_responses,
    {{ arg_max('score', 'answered_at') }} as last_nps_score,
    max(answered_at) as last_answered_at
from {{ ref('stg_nps_responses') }}
where {{ in_month_window('month_start') }}
group by customer_id, month_start

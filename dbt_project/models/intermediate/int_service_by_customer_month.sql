{{ incremental_by_month() }}
-- Service contacts per customer and month: interactions and complaints by the month they were
-- opened; complaint-resolution satisfaction by the month the complaint was resolved (a resolution
-- dated after a month is not known at that month's end).
with opened as (
    select
        customer_id,
        month_start,
        count(*) as interactions,
        count(*) filter (where kind = 'complaint') as complaints
    from {{ ref('stg_service_interactions') }}
    where {{ in_month_window('month_start') }}
    group by customer_id, month_start
),

resolved as (
    select
        customer_id,
        cast({{ dbt.date_trunc('month', 'resolved_at') }} as date) as month_start,
        count(satisfaction) as rated_complaint_resolutions,
        sum(satisfaction) as complaint_satisfaction_total
    from {{ ref('stg_service_interactions') }}
    where kind = 'complaint'
      and resolved_at is not null
      and {{ in_month_window("cast(" ~ dbt.date_trunc('month', 'resolved_at') ~ " as date)") }}
    group by customer_id, cast({{ dbt.date_trunc('month', 'resolved_at') }} as date)
)

select
    coalesce(o.customer_id, r.customer_id) as customer_id,
    coalesce(o.month_start, r.month_start) as month_start,
    coalesce(o.interactions, 0) as interactions,
    coalesce(o.complaints, 0) as complaints,
    coalesce(r.rated_complaint_resolutions, 0) as rated_complaint_resolutions,
    coalesce(r.complaint_satisfaction_total, 0) as complaint_satisfaction_total
from opened as o
full outer join resolved as r
    on r.customer_id = o.customer_id and r.month_start = o.month_start

-- One indicator row per live customer per month, counted independently from the raw deliveries:
-- live = some account, as last delivered on or before the month, opened by and still open at
-- month end, whose customer was delivered on or before the month with opened_at by month end.
with months as (
    select distinct
        cast(_delivery_month as date) as month_start,
        cast({{ dbt.last_day('_delivery_month', 'month') }} as date) as month_end
    from {{ source('raw', 'transactions') }}
),

accounts as (
    select a.customer_id, a.opened_at, a.closed_at, m.month_start, m.month_end
    from {{ source('raw', 'accounts') }} as a
    inner join months as m on a._delivery_month <= m.month_start
    qualify row_number() over (partition by a.account_id, m.month_start order by a._delivery_month desc) = 1
),

customers as (
    select c.customer_id, c.opened_at, m.month_start
    from {{ source('raw', 'customers') }} as c
    inner join months as m on c._delivery_month <= m.month_start
    qualify row_number() over (partition by c.customer_id, m.month_start order by c._delivery_month desc) = 1
),

expected as (
    select a.month_start, count(distinct a.customer_id) as live_customers
    from accounts as a
    inner join customers as c on c.customer_id = a.customer_id and c.month_start = a.month_start
    where a.opened_at <= a.month_end
      and (a.closed_at is null or a.closed_at > a.month_end)
      and c.opened_at <= a.month_end
    group by a.month_start
),

actual as (
    select month_start, count(*) as indicator_rows
    from {{ ref('customer_indicators_monthly') }}
    group by month_start
)

select e.month_start, e.live_customers, a.indicator_rows
from expected as e
full outer join actual as a on a.month_start = e.month_start
where e.month_start in (select month_start from actual)
  and (a.indicator_rows is null or e.live_customers <> a.indicator_rows)

-- One indicator row per live customer per month, counted independently from the raw deliveries.
-- Live = the customer, as last delivered on or before the month, has opened_at by month end and no
-- closed_at by then, and: where accounts have been delivered by the month, some account (as last
-- delivered) is open at month end; otherwise a transaction (not flagged anomalous while those are
-- excluded) or the opening lies within the last inactivity_months months.

with months as (
    select distinct
        cast(_delivery_month as date) as month_start,
        cast({{ dbt.last_day('_delivery_month', 'month') }} as date) as month_end
    from {{ source('raw', 'transactions') }}
    -- the run's months only (every month on a full build), as every other test (tests_in_run_months)
    where _delivery_month between cast('{{ var("start_month") }}' as date) and cast('{{ var("end_month") }}' as date)
),

first_accounts_month as (
    select min(cast(_delivery_month as date)) as month_start from {{ source('raw', 'accounts') }}
),

accounts as (
    select a.customer_id, a.opened_at, a.closed_at, m.month_start, m.month_end
    from {{ source('raw', 'accounts') }} as a
    inner join months as m on a._delivery_month <= m.month_start
    qualify row_number() over (partition by a.account_id, m.month_start order by a._delivery_month desc) = 1
),

customers as (
    select c.customer_id, c.opened_at, c.closed_at, m.month_start, m.month_end
    from {{ source('raw', 'customers') }} as c
    inner join months as m on c._delivery_month <= m.month_start
    qualify row_number() over (partition by c.customer_id, m.month_start order by c._delivery_month desc) = 1
),

-- Anomalous transactions are few: leaving their ids out is an anti-join against a small set, where
-- joining every raw transaction to its flag ran a full history at 1,000,000 customers out of memory.
last_day_by_month as (
    select t.customer_id, cast(t._delivery_month as date) as delivery_month, max(cast(t.booked_at as date)) as last_day
    from {{ source('raw', 'transactions') }} as t
    -- only months the inactivity rule reads: up to the run's last month, before any accounts delivery
    where t._delivery_month <= cast('{{ var("end_month") }}' as date)
      and t._delivery_month < coalesce((select month_start from first_accounts_month), date '9999-12-01')
    {%- if var('exclude_anomalous_transactions') %}
      and t.transaction_id not in (select transaction_id from {{ ref('int_transactions_flagged') }} where is_anomalous)
    {%- endif %}
    group by 1, 2
),

-- Only where the inactivity rule applies: months before any accounts delivery.
last_transaction as (
    select c.customer_id, c.month_start, max(d.last_day) as last_day
    from customers as c
    cross join first_accounts_month as fa
    inner join last_day_by_month as d on d.customer_id = c.customer_id and d.delivery_month <= c.month_start
    where fa.month_start is null or fa.month_start > c.month_start
    group by c.customer_id, c.month_start
),

live as (
    select c.month_start, c.customer_id
    from customers as c
    cross join first_accounts_month as fa
    left join last_transaction as l on l.customer_id = c.customer_id and l.month_start = c.month_start
    where c.opened_at <= c.month_end
      and (c.closed_at is null or c.closed_at > c.month_end)
      and case
          when fa.month_start <= c.month_start then exists (
              select 1 from accounts as a
              where a.customer_id = c.customer_id and a.month_start = c.month_start
                and a.opened_at <= a.month_end and (a.closed_at is null or a.closed_at > a.month_end))
          else {{ dbt.datediff(dbt.date_trunc('month', 'greatest(c.opened_at, coalesce(l.last_day, c.opened_at))'),
                               'c.month_start', 'month') }} < {{ var('inactivity_months') }}
      end
),

expected as (
    select month_start, count(distinct customer_id) as live_customers
    from live
    group by month_start
),

actual as (
    select month_start, count(*) as indicator_rows
    from {{ ref('customer_indicators_monthly') }}
    where month_start between cast('{{ var("start_month") }}' as date) and cast('{{ var("end_month") }}' as date)
    group by month_start
)

select e.month_start, e.live_customers, a.indicator_rows
from expected as e
full outer join actual as a on a.month_start = e.month_start
where coalesce(e.month_start, a.month_start) in (select month_start from actual)
  and (a.indicator_rows is null or e.live_customers is null or e.live_customers <> a.indicator_rows)

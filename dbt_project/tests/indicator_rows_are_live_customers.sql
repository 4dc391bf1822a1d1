{{ config(meta={'dagster': {'ref': {'name': 'customer_indicators_monthly'}}}) }}
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
    where {{ in_run_months('_delivery_month') }}
),

first_accounts_month as (
    select min(cast(_delivery_month as date)) as month_start from {{ source('raw', 'accounts') }}
),

-- Each record's version is valid from its delivery month until the key's next delivery: the months
-- join that range, so the versions are not paired with every later month and then ranked (which ran
-- a full history at 1,000,000 customers out of memory).

-- The customer-months with an account (as last delivered) open at month end.
open_account_months as (
    select distinct a.customer_id, m.month_start
    from (
        select
            customer_id, opened_at, closed_at, _delivery_month,
            lead(_delivery_month) over (partition by account_id order by _delivery_month) as superseded_month
        from {{ source('raw', 'accounts') }}
    ) as a
    inner join months as m
        on a._delivery_month <= m.month_start and (a.superseded_month is null or m.month_start < a.superseded_month)
    where a.opened_at <= m.month_end and (a.closed_at is null or a.closed_at > m.month_end)
),

customers as (
    select c.customer_id, c.opened_at, c.closed_at, m.month_start, m.month_end
    from (
        select
            customer_id, opened_at, closed_at, _delivery_month,
            lead(_delivery_month) over (partition by customer_id order by _delivery_month) as superseded_month
        from {{ source('raw', 'customers') }}
    ) as c
    inner join months as m
        on c._delivery_month <= m.month_start and (c.superseded_month is null or m.month_start < c.superseded_month)
),

-- Anomalous transactions are few: leaving their ids out is an anti-join against a small set, where
-- joining every raw transaction to its flag ran a full history at 1,000,000 customers out of memory.
last_day_by_month as (
    select t.customer_id, cast(t._delivery_month as date) as delivery_month, max(cast(t.booked_at as date)) as last_day
    from {{ source('raw', 'transactions') }} as t
    -- only months the inactivity rule reads: up to the run's last month, before any accounts delivery
    where t._delivery_month <= cast('{{ run_end_month() }}' as date)
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
    left join open_account_months as o on o.customer_id = c.customer_id and o.month_start = c.month_start
    where c.opened_at <= c.month_end
      and (c.closed_at is null or c.closed_at > c.month_end)
      and case
          when fa.month_start <= c.month_start then o.customer_id is not null
          else {{ months_between_dates(dbt.date_trunc('month', 'greatest(c.opened_at, coalesce(l.last_day, c.opened_at))'),
                               'c.month_start') }} < {{ var('inactivity_months') }}
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
    where {{ in_run_months('month_start') }}
    group by month_start
)

select e.month_start, e.live_customers, a.indicator_rows
from expected as e
full outer join actual as a on a.month_start = e.month_start
where coalesce(e.month_start, a.month_start) in (select month_start from actual)
  and (a.indicator_rows is null or e.live_customers is null or e.live_customers <> a.indicator_rows)

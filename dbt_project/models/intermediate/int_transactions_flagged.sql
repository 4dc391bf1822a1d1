{{ incremental_by_month() }}
-- Every transaction with an anomaly flag judged against the customer's own history:
--   amount_outlier: robust z-score of ln(amount) against the customer's previous 12 months
--                   (median and MAD; at least anomaly_min_history transactions) beyond anomaly_z_threshold;
--   burst:          more than burst_transactions_per_day transactions by the customer that day.
-- History is strictly earlier months, so a flag never depends on data dated later.

with window_transactions as (
    select *
    from {{ ref('stg_transactions') }}
    where {{ in_month_window('month_start') }}
),

months as (
    select distinct month_start from window_transactions
),

history as (
    select m.month_start, h.customer_id, ln(h.amount) as log_amount
    from months as m
    inner join {{ ref('stg_transactions') }} as h
        on h.month_start >= {{ dbt.dateadd('month', -12, 'm.month_start') }}
       and h.month_start < m.month_start
),

centre as (
    select month_start, customer_id, median(log_amount) as median_log_amount, count(*) as history_transactions
    from history
    group by month_start, customer_id
),

spread as (
    select h.month_start, h.customer_id, median(abs(h.log_amount - c.median_log_amount)) as mad_log_amount
    from history as h
    inner join centre as c
        on c.month_start = h.month_start and c.customer_id = h.customer_id
    group by h.month_start, h.customer_id
),

daily as (
    select customer_id, cast(booked_at as date) as booked_on, count(*) as transactions_that_day
    from window_transactions
    group by customer_id, cast(booked_at as date)
),

scored as (
    select
        t.*,
        case
            when c.history_transactions >= {{ var('anomaly_min_history') }} and s.mad_log_amount > 0
                then round(0.6745 * (ln(t.amount) - c.median_log_amount) / s.mad_log_amount, 4)
        end as amount_robust_z,
        d.transactions_that_day
    from window_transactions as t
    left join centre as c
        on c.month_start = t.month_start and c.customer_id = t.customer_id
    left join spread as s
        on s.month_start = t.month_start and s.customer_id = t.customer_id
    inner join daily as d
        on d.customer_id = t.customer_id and d.booked_on = cast(t.booked_at as date)
)

select
    *,
    case
        when abs(amount_robust_z) > {{ var('anomaly_z_threshold') }} then 'amount_outlier'
        when transactions_that_day > {{ var('burst_transactions_per_day') }} then 'burst'
    end as anomaly_reason,
    coalesce(abs(amount_robust_z) > {{ var('anomaly_z_threshold') }}, false)
        or transactions_that_day > {{ var('burst_transactions_per_day') }} as is_anomalous
from scored

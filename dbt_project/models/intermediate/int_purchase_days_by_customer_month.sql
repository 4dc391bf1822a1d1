{{ incremental_by_month() }}
-- The purchase days of each customer and month, summed up for the CLV models (valuetier/clv_scoring.py):
-- a purchase is a day with a transaction that is not flagged anomalous (same-day rows merged, as
-- the BG/NBD literature does). Every figure adds up over months -- counts and sums, the first and
-- last day, the first day's value -- so a CLV calibration window of 24 months reads 24 rows per
-- customer instead of re-aggregating 24 months of transactions by day.
with days as (
    select
        customer_id,
        month_start,
        cast(booked_at as date) as purchase_day,
        sum(amount) as amount,
        sum(profit_contribution) as profit_contribution
    from {{ ref('int_transactions_flagged') }}
    where not is_anomalous and {{ in_month_window('month_start') }}
    group by customer_id, month_start, cast(booked_at as date)
)

select
    customer_id,
    month_start,
    count(*) as purchase_days,
    min(purchase_day) as first_purchase_day,
    max(purchase_day) as last_purchase_day,
    cast(sum(amount) as decimal(18, 2)) as amount,
    cast(sum(profit_contribution) as decimal(18, 2)) as profit_contribution,
    cast({{ arg_min('amount', 'purchase_day') }} as decimal(18, 2)) as first_day_amount,
    cast({{ arg_min('profit_contribution', 'purchase_day') }} as decimal(18, 2)) as first_day_profit_contribution
from days
group by customer_id, month_start

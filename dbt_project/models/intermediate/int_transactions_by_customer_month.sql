-- One row per customer and month with at least one transaction.
select
    customer_id,
    month_start,
    count(*) as transaction_count,
    count(distinct cast(booked_at as date)) as active_days,
    cast(sum(amount) as decimal(18, 2)) as transaction_amount,
    cast(sum(profit_contribution) as decimal(18, 2)) as profit_contribution,
    max(amount) as largest_transaction,
    max(booked_at) as last_booked_at
from {{ ref('stg_transactions') }}
group by customer_id, month_start

{{ incremental_by_month() }}
-- One row per customer and month with at least one transaction. Anomalous transactions are left
-- out when var exclude_anomalous_transactions is true (the default) and counted either way.
{% set keep = "not is_anomalous" if var('exclude_anomalous_transactions') else "true" %}

select
    customer_id,
    month_start,
    count(*) filter (where {{ keep }}) as transaction_count,
    count(*) filter (where {{ keep }} and txn_type = 'purchase') as purchase_count,
    count(distinct cast(booked_at as date)) filter (where {{ keep }}) as active_days,
    cast(coalesce(sum(amount) filter (where {{ keep }}), 0) as decimal(18, 2)) as transaction_amount,
    cast(coalesce(sum(profit_contribution) filter (where {{ keep }}), 0) as decimal(18, 2)) as profit_contribution,
    max(amount) filter (where {{ keep }}) as largest_transaction,
    max(booked_at) filter (where {{ keep }}) as last_booked_at,
    count(*) filter (where is_anomalous) as anomalous_transactions
from {{ ref('int_transactions_flagged') }}
where {{ in_month_window('month_start') }}
group by customer_id, month_start

{{ view_read_by_python('month_start') }}
-- Timestamps are cast: Parquet written by DuckDB reaches Spark as timestamp_ntz (a no-op on DuckDB).
select
    transaction_id,
    customer_id,
    account_id,
    cast(_delivery_month as date) as month_start,
    cast(booked_at as timestamp) as booked_at,
    cast(amount as decimal(18, 2)) as amount,
    currency,
    txn_type,
    channel,
    cast(coalesce(fee_income, 0) as decimal(18, 2)) as fee_income,
    cast(coalesce(net_interest_margin, 0) as decimal(18, 2)) as net_interest_margin,
    cast(coalesce(fee_income, 0) + coalesce(net_interest_margin, 0) as decimal(18, 2)) as profit_contribution
from {{ source('raw', 'transactions') }}
{% if is_incremental() %}where {{ in_month_window('cast(_delivery_month as date)') }}{% endif %}

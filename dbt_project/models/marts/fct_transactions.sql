{{ incremental_by_month() }}
-- Every contract-valid transaction with its anomaly flag and reason (see int_transactions_flagged).
select
    transaction_id,
    customer_id,
    account_id,
    month_start,
    booked_at,
    amount,
    currency,
    txn_type,
    channel,
    fee_income,
    net_interest_margin,
    profit_contribution,
    amount_robust_z,
    transactions_that_day,
    is_anomalous,
    anomaly_reason
from {{ ref('int_transactions_flagged') }}
where {{ in_month_window('month_start') }}

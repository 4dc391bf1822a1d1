{{ incremental_by_month() }}
-- Every transaction with an anomaly flag judged against the customer's own history:
--   amount_outlier: robust z-score of ln(amount) -- distance from the median of the customer's
--                   previous 12 months, over the robust standard deviation IQR / 1.349 -- beyond
--                   anomaly_z_threshold, with at least anomaly_min_history earlier transactions;
--   burst:          more than burst_transactions_per_day transactions by the customer that day.
-- The baseline is strictly earlier months, so a flag never depends on data dated later.
{% set window_first = "cast('" ~ window_start() ~ "' as date)" %}
-- How the baseline is computed follows the run's size, so a month costs the month, not 13:
--   one month (the monthly steady state): each customer's previous 12 months aggregated once;
--   more (a first build, a backfill): each customer-month's 12 earlier months gathered by a window
--   over customer-months. Both give the same numbers (tests/test_pipeline.py builds the last
--   month each way and compares).
{% set one_month = is_one_month_run() %}

{% if one_month %}
-- The three quartiles from one aggregate: one copy of the values and one sort, not three.
with quartiles as (
    select
        customer_id,
        {{ quartiles('ln(amount)') }} as quartiles,
        count(*) as history_transactions
    from {{ ref('stg_transactions') }}
    where month_start >= {{ dbt.dateadd('month', -12, window_first) }} and month_start < {{ window_first }}
    group by customer_id
),

baselines as (
    select
        customer_id,
        {{ window_first }} as month_start,
        {{ list_item('quartiles', 2) }} as baseline_median,
        {{ list_item('quartiles', 3) }} - {{ list_item('quartiles', 1) }} as baseline_iqr,
        history_transactions
    from quartiles
),
{% else %}
-- Every transaction of a customer-month shares its baseline, so the baseline is computed once per
-- customer-month: each month's log amounts as a list, the lists of the 12 earlier months gathered by
-- a window over customer-months (not over transactions), and their quantiles taken from the list.
with months_of_transactions as (
    select customer_id, month_start, {{ list_of('ln(amount)') }} as log_amounts
    from {{ ref('stg_transactions') }}
    where month_start >= {{ dbt.dateadd('month', -12, window_first) }}
      and month_start <= cast('{{ run_end_month() }}' as date)
    group by customer_id, month_start
),

histories as (
    select customer_id, month_start, flatten({{ list_of('log_amounts') }} over earlier_12) as history
    from months_of_transactions
    window earlier_12 as (
        partition by customer_id order by month_start
        range between interval 12 month preceding and interval 1 month preceding
    )
),

quartiles as (
    select customer_id, month_start, {{ list_quartiles('history') }} as quartiles, history
    from histories
    where {{ in_month_window('month_start') }}
),

baselines as (
    select
        customer_id,
        month_start,
        {{ list_item('quartiles', 2) }} as baseline_median,
        {{ list_item('quartiles', 3) }} - {{ list_item('quartiles', 1) }} as baseline_iqr,
        coalesce({{ list_length('history') }}, 0) as history_transactions
    from quartiles
),
{% endif %}

-- A customer without a transaction in the 12 earlier months has no baseline row (one-month path).
scored as (
    select
        t.*,
        ln(t.amount) as log_amount,
        b.baseline_median,
        b.baseline_iqr,
        coalesce(b.history_transactions, 0) as history_transactions,
        count(*) over (partition by t.customer_id, cast(t.booked_at as date)) as transactions_that_day
    from {{ ref('stg_transactions') }} as t
    left join baselines as b on b.customer_id = t.customer_id and b.month_start = t.month_start
    where {{ in_month_window('t.month_start') }}
),

flagged as (
    select
        *,
        case
            when history_transactions >= {{ var('anomaly_min_history') }} and baseline_iqr > 0
                then round(1.349 * (log_amount - baseline_median) / baseline_iqr, 4)
        end as amount_robust_z
    from scored
    where {{ in_month_window('month_start') }}
)

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
    case
        when abs(amount_robust_z) > {{ var('anomaly_z_threshold') }} then 'amount_outlier'
        when transactions_that_day > {{ var('burst_transactions_per_day') }} then 'burst'
    end as anomaly_reason,
    coalesce(abs(amount_robust_z) > {{ var('anomaly_z_threshold') }}, false)
        or transactions_that_day > {{ var('burst_transactions_per_day') }} as is_anomalous
from flagged

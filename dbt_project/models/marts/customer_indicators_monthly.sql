{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='month_start',
    on_schema_change='fail'
) }}
-- One row per live customer (an open account at month end) per processed month.
-- Point in time: every window ends at the row's month; nothing dated later is read.
-- Windows run over the full history; only months inside the run's window are written.

with activity as (
    select
        g.customer_id,
        g.month_start,
        g.month_end,
        g.opened_at,
        coalesce(t.transaction_count, 0) as transactions_in_month,
        coalesce(t.transaction_amount, 0) as amount_in_month,
        coalesce(t.profit_contribution, 0) as profit_in_month,
        t.last_booked_at
    from {{ ref('int_customer_month_grid') }} as g
    left join {{ ref('int_transactions_by_customer_month') }} as t
        on t.customer_id = g.customer_id
       and t.month_start = g.month_start
),

windowed as (
    select
        *,
        sum(transactions_in_month) over trailing_12 as frequency_12m,
        cast(sum(amount_in_month) over trailing_12 as decimal(18, 2)) as monetary_12m,
        cast(sum(profit_in_month) over trailing_12 as decimal(18, 2)) as profit_contribution_12m,
        cast(sum(amount_in_month) over to_date as decimal(18, 2)) as cumulative_amount,
        sum(transactions_in_month) over to_date as cumulative_transactions,
        max(last_booked_at) over to_date as last_transaction_at
    from activity
    window
        trailing_12 as (partition by customer_id order by month_start rows between 11 preceding and current row),
        to_date as (partition by customer_id order by month_start rows between unbounded preceding and current row)
),

live as (
    select
        w.*,
        h.product_count,
        h.assets_under_management,
        {{ dbt.datediff('cast(w.last_transaction_at as date)', 'w.month_end', 'day') }} as recency_days,
        {{ dbt.datediff('w.opened_at', 'w.month_end', 'month') }} as tenure_months
    from windowed as w
    inner join {{ ref('int_holdings_by_customer_month') }} as h
        on h.customer_id = w.customer_id
       and h.month_start = w.month_start
    where w.opened_at <= w.month_end
      and {{ in_month_window('w.month_start') }}
),

-- 1-5 scores from the percent rank within the month: equal values always get equal scores.
scored as (
    select
        *,
        cast(least(5, 1 + floor(5 * percent_rank() over (
            partition by month_start order by recency_days desc nulls first))) as integer) as recency_score,
        cast(least(5, 1 + floor(5 * percent_rank() over (
            partition by month_start order by frequency_12m))) as integer) as frequency_score,
        cast(least(5, 1 + floor(5 * percent_rank() over (
            partition by month_start order by monetary_12m))) as integer) as monetary_score
    from live
)

select
    customer_id,
    month_start,
    month_end,
    tenure_months,
    recency_days,
    frequency_12m,
    monetary_12m,
    profit_contribution_12m,
    cast(case when frequency_12m > 0 then monetary_12m / frequency_12m end as decimal(18, 2)) as average_ticket_12m,
    cumulative_amount,
    cumulative_transactions,
    transactions_in_month,
    amount_in_month,
    product_count,
    assets_under_management,
    recency_score,
    frequency_score,
    monetary_score,
    cast(recency_score as varchar) || cast(frequency_score as varchar) || cast(monetary_score as varchar) as rfm_cell
from scored

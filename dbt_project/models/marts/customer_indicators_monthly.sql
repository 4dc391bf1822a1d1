{{ incremental_by_month() }}
-- Customer value indicators (seed section 3), one row per live customer per processed month.
-- Live: the relationship has begun and is not closed (customer closed_at, where delivered), and --
-- where the bank delivers accounts -- an account is open at month end; without accounts, a
-- transaction (or the opening) within the last inactivity_months months.
-- Point in time: every window ends at the row's month end; nothing dated later is read.
-- Incremental: a run reads the monthly intermediate tables for its window and the 11 months
-- before it (the longest trailing window), the per-customer totals before that, and the previous
-- month's own rows (for the retention streak); it writes only the months of its window.
-- Stored in month and customer order: every reader takes one month (scoring, CLV, the uplift
-- model, the checks), and DuckDB then skips the row groups of the other months, which a history
-- built in one run would otherwise mix into every row group.
{% set history_start = window_history_start(11) %}
{% set window_first = "cast('" ~ window_start() ~ "' as date)" %}
{% set features_available = var('digital_features_available') %}

with first_processed_month as (
    select min(month_start) as month_start from {{ ref('int_months') }}
),

first_accounts_month as (
    select min(delivery_month) as month_start from {{ ref('stg_accounts') }}
),

{#- Each monthly table is read for the grid's months only (stated on every table: the join alone
    does not carry the month range to their scans). -#}
{% set in_grid_months = "month_start between " ~ history_start ~ " and cast('" ~ run_end_month() ~ "' as date)" %}

grid as (
    select customer_id, month_start, month_end, opened_at, closed_at
    from {{ ref('int_customer_month_grid') }}
    where {{ in_grid_months }}
),

grid_transactions as (
    select * from {{ ref('int_transactions_by_customer_month') }}
    where {{ in_grid_months }}
),

grid_logins as (
    select * from {{ ref('int_digital_activity_by_customer_month') }}
    where {{ in_grid_months }}
),

grid_service as (
    select * from {{ ref('int_service_by_customer_month') }}
    where {{ in_grid_months }}
),

grid_nps as (
    select * from {{ ref('int_nps_by_customer_month') }}
    where {{ in_grid_months }}
),

activity as (
    select
        g.customer_id,
        g.month_start,
        g.month_end,
        g.opened_at,
        g.closed_at,
        coalesce(t.transaction_count, 0) as transactions_in_month,
        coalesce(t.purchase_count, 0) as purchases_in_month,
        coalesce(t.transaction_amount, 0) as amount_in_month,
        coalesce(t.profit_contribution, 0) as profit_in_month,
        coalesce(t.anomalous_transactions, 0) as anomalous_transactions_in_month,
        t.largest_transaction,
        t.last_booked_at,
        coalesce(d.logins, 0) as logins_in_month,
        d.most_features_in_a_session,
        d.last_login_at,
        coalesce(s.interactions, 0) as service_interactions_in_month,
        coalesce(s.complaints, 0) as complaints_in_month,
        coalesce(s.rated_complaint_resolutions, 0) as rated_resolutions_in_month,
        coalesce(s.complaint_satisfaction_total, 0) as satisfaction_total_in_month,
        n.last_nps_score
    from grid as g
    left join grid_transactions as t
        on t.customer_id = g.customer_id and t.month_start = g.month_start
    left join grid_logins as d
        on d.customer_id = g.customer_id and d.month_start = g.month_start
    left join grid_service as s
        on s.customer_id = g.customer_id and s.month_start = g.month_start
    left join grid_nps as n
        on n.customer_id = g.customer_id and n.month_start = g.month_start
),

-- Per-customer totals of everything before the grid's first month (aggregated monthly rows).
earlier_transactions as (
    select
        customer_id,
        sum(transaction_count) as transactions,
        sum(transaction_amount) as amount,
        sum(profit_contribution) as profit,
        sum(case when purchase_count > 0 then 1 else 0 end) as purchase_months,
        max(last_booked_at) as last_booked_at
    from {{ ref('int_transactions_by_customer_month') }}
    where month_start < {{ history_start }}
    group by customer_id
),

earlier_logins as (
    select customer_id, max(last_login_at) as last_login_at
    from {{ ref('int_digital_activity_by_customer_month') }}
    where month_start < {{ history_start }}
    group by customer_id
),

earlier_nps as (
    select customer_id, {{ arg_max('last_nps_score', 'last_answered_at') }} as last_nps_score
    from {{ ref('int_nps_by_customer_month') }}
    where month_start < {{ history_start }}
    group by customer_id
),

{#- Trailing windows count processed months. One month (the monthly steady state): each customer's
    history rows aggregated once, grouped by customer; more months: windows over customer-months.
    The same values either way (tests/test_pipeline.py builds the last month each way and compares). -#}
{% set one_month = is_one_month_run() %}

{% if one_month %}
-- Processed months counted back from the run's month (0), for the grouped trailing aggregates.
months_back as (
    select month_start, count(*) over (order by month_start desc) - 1 as months_back
    from {{ ref('int_months') }}
    where month_start between {{ history_start }} and {{ window_first }}
),

history as (
    select a.*, m.months_back
    from activity as a
    inner join months_back as m on m.month_start = a.month_start
),
{% else %}
history as (
    select * from activity
),
{% endif %}

trailing_values as (
    select
        {% if one_month %}customer_id, {{ window_first }} as month_start,{% else %}*,{% endif %}
        {{ trailing('sum', 'transactions_in_month', 11, one_month=one_month) }} as frequency_12m,
        {{ trailing('sum', 'amount_in_month', 11, one_month=one_month) }} as monetary_12m,
        {{ trailing('sum', 'profit_in_month', 11, one_month=one_month) }} as profit_contribution_12m,
        {{ trailing('max', 'largest_transaction', 11, one_month=one_month) }} as largest_transaction_12m,
        {{ trailing('sum', 'case when purchases_in_month > 0 then 1 else 0 end', 11, one_month=one_month) }}
            as purchase_months_12m,
        {{ trailing('sum', 'case when purchases_in_month > 1 then 1 else 0 end', 11, one_month=one_month) }}
            as repeat_purchase_months_12m,
        {{ trailing('max', 'amount_in_month', 1, 1, one_month=one_month) }} as amount_previous_month,
        {{ trailing('sum', 'amount_in_month', 2, one_month=one_month) }} as amount_3m,
        {{ trailing('sum', 'amount_in_month', 5, 3, one_month=one_month) }} as amount_prior_3m,
        {{ trailing('sum', 'logins_in_month', 2, one_month=one_month) }} as logins_3m,
        {{ trailing('max', 'most_features_in_a_session', 2, one_month=one_month) }} as most_features_3m,
        {{ trailing('sum', 'logins_in_month + service_interactions_in_month', 2, one_month=one_month) }}
            as interactions_3m,
        {{ trailing('sum', 'complaints_in_month', 11, one_month=one_month) }} as complaints_12m,
        {{ trailing('sum', 'rated_resolutions_in_month', 11, one_month=one_month) }} as rated_resolutions_12m,
        {{ trailing('sum', 'satisfaction_total_in_month', 11, one_month=one_month) }} as satisfaction_total_12m,
        {{ trailing('sum', 'transactions_in_month', one_month=one_month) }} as grid_transactions,
        {{ trailing('sum', 'amount_in_month', one_month=one_month) }} as grid_amount,
        {{ trailing('sum', 'profit_in_month', one_month=one_month) }} as grid_profit,
        {{ trailing('sum', 'case when purchases_in_month > 0 then 1 else 0 end', one_month=one_month) }}
            as grid_purchase_months,
        {{ trailing('max', 'last_booked_at', one_month=one_month) }} as grid_last_booked_at,
        {{ trailing('max', 'last_login_at', one_month=one_month) }} as grid_last_login_at,
        {% if one_month -%}
        {{ arg_min('last_nps_score', 'case when last_nps_score is not null then months_back end') }}
        {%- else -%}
        {{ last_non_null('last_nps_score') }} over (
            partition by customer_id order by month_start rows between unbounded preceding and current row)
        {%- endif %} as grid_last_nps_score,
        {{ trailing('count', 'month_start', one_month=one_month) }} as grid_months_to_date,
        {{ trailing('max', 'case when transactions_in_month = 0 then month_start end', one_month=one_month) }}
            as last_inactive_month,
        max(case when month_start < {{ window_first }} and transactions_in_month = 0 then month_start end)
            {%- if not one_month %} over (partition by customer_id){% endif %} as last_inactive_before_window
    from history
    {% if one_month %}group by customer_id{% endif %}
),

{% if one_month %}
windowed as (
    -- USING merges the key columns: the result has one customer_id and one month_start.
    select *  -- noqa: RF02
    from activity
    inner join trailing_values using (customer_id, month_start)
),
{% else %}
windowed as (
    select * from trailing_values
),
{% endif %}

{% if is_incremental() %}
previous_month as (
    select customer_id, retention_streak_months
    from {{ this }}
    where month_start = {{ dbt.dateadd('month', -1, window_first) }}
),
{% endif %}

candidates as (
    select
        w.*,
        h.customer_id is not null as has_open_account,
        coalesce(fa.month_start <= w.month_start, false) as accounts_delivered,
        h.product_count,
        h.assets_under_management,
        h.holds_savings, h.holds_term_deposit, h.holds_fund, h.holds_insurance,
        h.holds_credit_card, h.holds_loan, h.holds_wealth,
        coalesce(et.transactions, 0) + w.grid_transactions as cumulative_transactions,
        cast(coalesce(et.amount, 0) + w.grid_amount as decimal(18, 2)) as cumulative_amount,
        cast(coalesce(et.profit, 0) + w.grid_profit as decimal(18, 2)) as cumulative_profit_contribution,
        coalesce(et.purchase_months, 0) + w.grid_purchase_months as purchase_months_to_date,
        coalesce(w.grid_last_booked_at, et.last_booked_at) as last_transaction_at,
        greatest(
            coalesce(w.grid_last_booked_at, et.last_booked_at), coalesce(w.grid_last_login_at, el.last_login_at)
        ) as last_activity_at,
        coalesce(w.grid_last_nps_score, en.last_nps_score) as last_nps_score_to_date,
        -- Consecutive months with a transaction, ending at this month: months since the last
        -- inactive month; with none in the run's window, the streak carried from the month before it.
        case
            when w.last_inactive_month >= {{ window_first }}
                then {{ months_between_dates('w.last_inactive_month', 'w.month_start') }}
            {% if is_incremental() %}
            when p.retention_streak_months is not null
                then p.retention_streak_months + {{ months_between_dates(window_first, 'w.month_start') }} + 1
            {% endif %}
            when w.last_inactive_before_window is not null
                then {{ months_between_dates('w.last_inactive_before_window', 'w.month_start') }}
            else w.grid_months_to_date
        end as retention_streak_raw
    from windowed as w
    left join {{ ref('int_product_holdings_by_customer_month') }} as h
        on h.customer_id = w.customer_id and h.month_start = w.month_start
    cross join first_accounts_month as fa
    left join earlier_transactions as et on et.customer_id = w.customer_id
    left join earlier_logins as el on el.customer_id = w.customer_id
    left join earlier_nps as en on en.customer_id = w.customer_id
    {% if is_incremental() %}
    left join previous_month as p on p.customer_id = w.customer_id
    {% endif %}
    where w.opened_at <= w.month_end
      and (w.closed_at is null or w.closed_at > w.month_end)
      and {{ in_month_window('w.month_start') }}
),

live as (
    select *
    from candidates
    where case
        when accounts_delivered then has_open_account
        else {{ months_between_dates(
            dbt.date_trunc('month', 'greatest(opened_at, coalesce(cast(last_transaction_at as date), opened_at))'),
            'month_start') }} < {{ var('inactivity_months') }}
    end
),

responses as (
    select l.customer_id, l.month_start, median(r.response_hours) as median_response_hours_12m
    from live as l
    inner join {{ ref('int_campaign_responses') }} as r
        on r.customer_id = l.customer_id
       and r.response_month > {{ dbt.dateadd('month', -12, 'l.month_start') }}
       and r.response_month <= l.month_start
    group by l.customer_id, l.month_start
),

-- 1-5 scores from the percent rank within the month: equal values always get equal scores.
-- The three ranks over the few columns they need: a window over the month's whole rows would
-- carry every column through three sorts.
rfm_inputs as (
    select
        customer_id,
        month_start,
        {{ dbt.datediff('cast(last_transaction_at as date)', 'month_end', 'day') }} as recency_days,
        frequency_12m,
        monetary_12m
    from live
),

rfm_scores as (
    select
        customer_id,
        month_start,
        recency_days,
        cast(least(5, 1 + floor(5 * percent_rank() over (
            partition by month_start order by recency_days desc nulls first))) as integer) as recency_score,
        cast(least(5, 1 + floor(5 * percent_rank() over (
            partition by month_start order by frequency_12m))) as integer) as frequency_score,
        cast(least(5, 1 + floor(5 * percent_rank() over (
            partition by month_start order by monetary_12m))) as integer) as monetary_score
    from rfm_inputs
),

scored as (
    select
        l.*,
        r.median_response_hours_12m,
        rs.recency_days,
        {{ months_between_dates('l.opened_at', 'l.month_end') }} as tenure_months,
        -- Months since joining, counted from the first month the bank's data covers.
        {{ months_between_dates(
            'greatest(cast(' ~ dbt.date_trunc('month', 'l.opened_at') ~ ' as date), f.month_start)',
            'l.month_start') }} + 1 as months_observed,
        rs.recency_score,
        rs.frequency_score,
        rs.monetary_score
    from live as l
    inner join rfm_scores as rs on rs.customer_id = l.customer_id and rs.month_start = l.month_start
    left join responses as r
        on r.customer_id = l.customer_id and r.month_start = l.month_start
    cross join first_processed_month as f
)

select
    customer_id,
    month_start,
    month_end,
    -- financial contribution
    cast(cumulative_transactions as bigint) as cumulative_transactions,
    cumulative_amount,
    cumulative_profit_contribution,
    transactions_in_month,
    amount_in_month,
    cast(monetary_12m as decimal(18, 2)) as monetary_12m,
    cast(profit_contribution_12m as decimal(18, 2)) as profit_contribution_12m,
    case when frequency_12m > 0 then {{ rounded_ratio('monetary_12m', 'frequency_12m', 18, 2) }} end
        as average_ticket_12m,
    largest_transaction_12m,
    case when purchase_months_12m > 0
        then {{ rounded_ratio('repeat_purchase_months_12m', 'purchase_months_12m', 5, 4) }} end
        as repeat_purchase_month_share_12m,
    {{ rounded_ratio('purchase_months_to_date', 'months_observed', 5, 4) }} as purchase_month_ratio,
    assets_under_management,
    product_count,
    holds_savings, holds_term_deposit, holds_fund, holds_insurance, holds_credit_card, holds_loan, holds_wealth,
    case when amount_previous_month > 0
        then {{ rounded_ratio('amount_in_month - amount_previous_month', 'amount_previous_month', 12, 4) }} end
        as spend_change_mom,
    case when amount_prior_3m > 0
        then {{ rounded_ratio('amount_3m - amount_prior_3m', 'amount_prior_3m', 12, 4) }} end as spend_trend_3m,
    anomalous_transactions_in_month,
    -- activity
    logins_in_month,
    cast(logins_3m as integer) as logins_3m,
    {{ rounded_ratio('coalesce(most_features_3m, 0)', features_available, 5, 4) }} as feature_usage_rate_3m,
    cast(interactions_3m as integer) as interactions_3m,
    median_response_hours_12m,
    -- loyalty
    cast(complaints_12m as integer) as complaints_12m,
    case when rated_resolutions_12m > 0
        then {{ rounded_ratio('satisfaction_total_12m', 'rated_resolutions_12m', 4, 2) }}
    end as complaint_satisfaction_12m,
    last_nps_score_to_date as last_nps_score,
    case
        when last_nps_score_to_date >= 9 then 'promoter'
        when last_nps_score_to_date >= 7 then 'passive'
        when last_nps_score_to_date is not null then 'detractor'
    end as nps_class,
    tenure_months,
    retention_streak_raw as retention_streak_months,
    {{ months_between_dates(dbt.date_trunc('month', 'last_activity_at'), 'month_start') }}
        as months_since_last_activity,
    -- RFM
    recency_days,
    cast(frequency_12m as integer) as frequency_12m,
    recency_score,
    frequency_score,
    monetary_score,
    cast(recency_score as {{ dbt.type_string() }}) || cast(frequency_score as {{ dbt.type_string() }})
        || cast(monetary_score as {{ dbt.type_string() }}) as rfm_cell,
    {{ rfm_segment('recency_score', 'frequency_score') }} as rfm_segment
from scored
order by month_start asc, customer_id asc

{{ incremental_by_month() }}
-- What became of every tiered customer of a scored month in the months after it: live or not at
-- the end of each outcome window (var outcome_windows_months), and the transactions and value the
-- customer brought within it, in the month's value measure; and the value realised over the
-- months the predicted value stands for (value_horizon_months), for the backtest.
-- Outcomes read months after the scored month on purpose: they are labels, used only in evaluation.
-- A window's figures are null until its last month is processed; a run of months S..E rewrites the
-- months from S minus the longest window to E (those whose windows it extends or rescored).
{% set windows = var('outcome_windows_months') %}
{% if var('outcome_months') not in windows %}
    {{ exceptions.raise_compiler_error("var outcome_windows_months must hold var outcome_months") }}
{% endif %}
{% set longest = longest_outcome_window() %}

with months as (
    select * from {{ ref('int_evaluation_months') }}
),

scored as (
    select
        t.customer_id,
        t.month_start,
        t.value_tier,
        t.segment,
        t.predicted_value,
        t.value_horizon_months,
        t.churn_probability,
        t.clv_12m,
        m.month_index,
        m.uses_profit,
        least(m.months_after, {{ longest }}) as months_observed
    from {{ source('marts', 'customer_tiers') }} as t
    inner join months as m
        on m.month_start = t.month_start
    where {{ in_evaluated_months('t.month_start') }}
),

-- The customer's transaction months after the scored month, up to the longest window.
activity_after as (
    select
        s.customer_id,
        s.month_start,
        m.month_index - s.month_index as months_after,
        s.value_horizon_months,
        case when s.uses_profit then x.profit_contribution else x.transaction_amount end as value,
        x.profit_contribution,
        x.transaction_amount,
        x.transaction_count
    from scored as s
    inner join {{ ref('int_transactions_by_customer_month') }} as x
        on x.customer_id = s.customer_id
        and {{ in_outcome_months('x.month_start') }}
    inner join months as m
        on m.month_start = x.month_start
        and m.month_index between s.month_index + 1 and s.month_index + {{ longest }}
),

activity as (
    select
        a.customer_id,
        a.month_start,
        {%- for k in windows %}
        sum(a.value) filter (where a.months_after <= {{ k }}) as value_{{ k }}m,
        sum(a.profit_contribution) filter (where a.months_after <= {{ k }}) as profit_{{ k }}m,
        sum(a.transaction_amount) filter (where a.months_after <= {{ k }}) as amount_{{ k }}m,
        sum(a.transaction_count) filter (where a.months_after <= {{ k }}) as transactions_{{ k }}m,
        {%- endfor %}
        sum(a.value) filter (where a.months_after <= a.value_horizon_months) as value_over_horizon
    from activity_after as a
    group by a.customer_id, a.month_start
),

-- Live (an indicator row: relationship open) at the end of each window.
liveness as (
    select
        s.customer_id,
        s.month_start,
        {%- for k in windows %}
        bool_or(m.month_index = s.month_index + {{ k }}) as live_{{ k }}m{{ "," if not loop.last }}
        {%- endfor %}
    from scored as s
    inner join {{ ref('customer_indicators_monthly') }} as i
        on i.customer_id = s.customer_id
        and {{ in_outcome_months('i.month_start') }}
    inner join months as m
        on m.month_start = i.month_start
        and m.month_index between s.month_index + 1 and s.month_index + {{ longest }}
    group by s.customer_id, s.month_start
)

select
    s.customer_id,
    s.month_start,
    s.value_tier,
    s.segment,
    s.predicted_value,
    s.value_horizon_months,
    s.churn_probability,
    s.clv_12m,
    case when s.uses_profit then 'profit' else 'revenue' end as value_measure,
    s.months_observed,
    {%- for k in windows %}
    case when s.months_observed >= {{ k }} then coalesce(l.live_{{ k }}m, false) end as live_{{ k }}m,
    case when s.months_observed >= {{ k }} then coalesce(a.transactions_{{ k }}m, 0) > 0 end as transacted_{{ k }}m,
    case when s.months_observed >= {{ k }} then cast(coalesce(a.value_{{ k }}m, 0) as decimal(18, 2)) end
        as value_{{ k }}m,
    case when s.months_observed >= {{ k }} then cast(coalesce(a.profit_{{ k }}m, 0) as decimal(18, 2)) end
        as profit_{{ k }}m,
    case when s.months_observed >= {{ k }} then cast(coalesce(a.amount_{{ k }}m, 0) as decimal(18, 2)) end
        as amount_{{ k }}m,
    case when s.months_observed >= {{ k }} then cast(coalesce(a.transactions_{{ k }}m, 0) as bigint) end
        as transactions_{{ k }}m,
    {%- endfor %}
    case
        when s.months_observed >= s.value_horizon_months then cast(coalesce(a.value_over_horizon, 0) as decimal(18, 2))
    end
        as value_over_horizon
from scored as s
left join activity as a
    on a.customer_id = s.customer_id and a.month_start = s.month_start
left join liveness as l
    on l.customer_id = s.customer_id and l.month_start = s.month_start
where s.months_observed >= 1

{{ incremental_by_month() }}
-- Retention and conversion by tier, for each scored month whose outcome window has passed.
-- Outcomes read months after the scored month on purpose: they are labels, used only here.
-- Retained: still live (an indicator row) at the window's end and a transaction within it.
-- Realised value is in the value measure the tiers rank (var value_measure).
-- Incremental: a run of months S..E re-evaluates the months whose tiers it may have rescored
-- (S..E) and those whose outcome window it completes (S - outcome_months onwards).
{% set k = var('outcome_months') %}
{% set first_evaluated = dbt.dateadd('month', -k, "cast('" ~ window_start() ~ "' as date)") %}

with months as (
    select month_start, month_end, row_number() over (order by month_start) as month_index
    from {{ ref('int_months') }}
),

windows as (
    select
        m.month_start,
        m.month_end,
        w.month_start as window_last_month,
        w.month_end as window_end,
        {{ uses_profit_measure('m.month_start') }} as uses_profit
    from months as m
    inner join months as w
        on w.month_index = m.month_index + {{ k }}
    where m.month_start between {{ first_evaluated }} and cast('{{ run_end_month() }}' as date)
),

tiers as (
    select t.customer_id, t.month_start, t.value_tier, w.month_end, w.window_last_month, w.window_end, w.uses_profit
    from {{ source('marts', 'customer_tiers') }} as t
    inner join windows as w
        on w.month_start = t.month_start
),

-- Transactions in the outcome window, summed by one join (not two subqueries per customer).
in_window_transactions as (
    select
        t.customer_id,
        t.month_start,
        sum(x.profit_contribution) as realised_profit,
        sum(x.transaction_amount) as realised_amount
    from tiers as t
    inner join {{ ref('int_transactions_by_customer_month') }} as x
        on x.customer_id = t.customer_id
        and x.month_start > t.month_start and x.month_start <= t.window_last_month
    group by t.customer_id, t.month_start
),

outcomes as (
    select
        t.customer_id,
        t.month_start,
        t.value_tier,
        t.uses_profit,
        x.customer_id is not null and exists (
            select 1 from {{ ref('customer_indicators_monthly') }} as i
            where i.customer_id = t.customer_id and i.month_start = t.window_last_month
        ) as retained,
        exists (
            select 1 from {{ ref('stg_accounts') }} as a
            where a.customer_id = t.customer_id
              and a.opened_at > t.month_end and a.opened_at <= t.window_end
        ) as opened_product,
        exists (
            select 1 from {{ ref('stg_campaign_contacts') }} as c
            where c.customer_id = t.customer_id
              and c.converted_at > t.month_end and c.converted_at < t.window_end + interval 1 day
        ) as campaign_converted,
        coalesce(x.realised_profit, 0) as realised_profit,
        coalesce(x.realised_amount, 0) as realised_amount
    from tiers as t
    left join in_window_transactions as x
        on x.customer_id = t.customer_id and x.month_start = t.month_start
)

select
    month_start,
    value_tier,
    {{ k }} as outcome_months,
    count(*) as customers,
    count(*) filter (where retained) as retained_customers,
    cast(round(avg(case when retained then 1.0 else 0.0 end), 4) as decimal(5, 4)) as retention_rate,
    count(*) filter (where opened_product) as converted_customers,
    cast(round(avg(case when opened_product then 1.0 else 0.0 end), 4) as decimal(5, 4)) as conversion_rate,
    count(*) filter (where campaign_converted) as campaign_converted_customers,
    cast(sum(realised_profit) as decimal(18, 2)) as realised_profit_contribution,
    cast(round(sum(realised_profit) / count(*), 2) as decimal(18, 2)) as realised_profit_per_customer,
    case when bool_and(uses_profit) then 'profit' else 'revenue' end as value_measure,
    cast(sum(case when uses_profit then realised_profit else realised_amount end) as decimal(18, 2)) as realised_value,
    cast(round(sum(case when uses_profit then realised_profit else realised_amount end) / count(*), 2)
        as decimal(18, 2)) as realised_value_per_customer
from outcomes
group by month_start, value_tier

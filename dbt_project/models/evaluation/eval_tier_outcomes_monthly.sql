{{ incremental_by_month() }}
-- The tiers' overview for each scored month whose main outcome window (var outcome_months) has
-- passed: retention, conversion, the value realised in the window (in the month's value measure,
-- var value_measure) with each tier's share of it, the average ticket, and the 12-month CLV the
-- tiers were scored with. Outcomes are labels, read months after the scored month on purpose.
-- Retained: still live at the window's end and transacted within it (int_tier_outcomes).
{% set k = var('outcome_months') %}

with outcomes as (
    select
        o.*,
        -- the window: from the first day after the scored month up to (not including) the first
        -- day after its last month
        cast({{ dbt.dateadd('month', 1, 'o.month_start') }} as date) as window_start,
        cast({{ dbt.dateadd('month', k + 1, 'o.month_start') }} as date) as window_end
    from {{ ref('int_tier_outcomes') }} as o
    where {{ in_evaluated_months('o.month_start') }}
      and o.months_observed >= {{ k }}
),

flagged as (
    select
        o.*,
        exists(
            select 1 from {{ ref('stg_accounts') }} as a
            where a.customer_id = o.customer_id
              and a.opened_at >= o.window_start and a.opened_at < o.window_end
        ) as opened_product,
        exists(
            select 1 from {{ ref('stg_campaign_contacts') }} as c
            where c.customer_id = o.customer_id
              and c.converted_at >= o.window_start and c.converted_at < o.window_end
        ) as campaign_converted
    from outcomes as o
),

by_tier as (
    select
        month_start,
        value_tier,
        count(*) as customers,
        count(*) filter (where live_{{ k }}m and transacted_{{ k }}m) as retained_customers,
        count(*) filter (where opened_product) as converted_customers,
        count(*) filter (where campaign_converted) as campaign_converted_customers,
        sum(value_{{ k }}m) as realised_value,
        sum(amount_{{ k }}m) as realised_amount,
        sum(transactions_{{ k }}m) as realised_transactions,
        sum(profit_{{ k }}m) as realised_profit,
        bool_and(value_measure = 'profit') as uses_profit,
        -- in cents, summed exactly: a mean of doubles differs in its last digits with the order
        -- threads add them, and rounding can turn that into a cent
        avg(cast(clv_12m as decimal(18, 2))) as mean_clv_12m
    from flagged
    group by month_start, value_tier
)

select
    month_start,
    value_tier,
    {{ k }} as outcome_months,
    customers,
    retained_customers,
    cast(round(retained_customers / customers, 4) as decimal(5, 4)) as retention_rate,
    converted_customers,
    cast(round(converted_customers / customers, 4) as decimal(5, 4)) as conversion_rate,
    campaign_converted_customers,
    cast(realised_profit as decimal(18, 2)) as realised_profit_contribution,
    cast(round(realised_profit / customers, 2) as decimal(18, 2)) as realised_profit_per_customer,
    case when uses_profit then 'profit' else 'revenue' end as value_measure,
    cast(realised_value as decimal(18, 2)) as realised_value,
    cast(round(realised_value / customers, 2) as decimal(18, 2)) as realised_value_per_customer,
    cast(round(realised_value / nullif(sum(realised_value) over (partition by month_start), 0), 4) as decimal(5, 4))
        as value_share,
    cast(realised_transactions as bigint) as realised_transactions,
    cast(round(realised_amount / nullif(realised_transactions, 0), 2) as decimal(18, 2)) as average_ticket,
    cast(round(mean_clv_12m, 2) as decimal(18, 2)) as mean_clv_12m
from by_tier

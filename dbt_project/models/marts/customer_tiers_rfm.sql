{{ incremental_by_month() }}
-- First tiers, by rule: a weighted RFM score cut into shares of the month's live customers.
-- Ties are broken by 12-month spend, then profit, then customer id, so shares are exact and stable.
{% set w_r = var('rfm_weight_recency') %}
{% set w_f = var('rfm_weight_frequency') %}
{% set w_m = var('rfm_weight_monetary') %}

with scored as (
    select
        customer_id,
        month_start,
        month_end,
        recency_score,
        frequency_score,
        monetary_score,
        rfm_cell,
        monetary_12m,
        profit_contribution_12m,
        cast(round(({{ w_r }} * recency_score + {{ w_f }} * frequency_score + {{ w_m }} * monetary_score)
            / ({{ w_r }} + {{ w_f }} + {{ w_m }}), 4) as decimal(6, 4)) as rfm_weighted_score
    from {{ ref('customer_indicators_monthly') }}
    where {{ in_month_window('month_start') }}
),

ranked as (
    select
        *,
        row_number() over (
            partition by month_start
            order by rfm_weighted_score desc, monetary_12m desc, profit_contribution_12m desc, customer_id asc
        ) as value_rank,
        count(*) over (partition by month_start) as customers_in_month
    from scored
)

select
    customer_id,
    month_start,
    month_end,
    case
        when value_rank <= round({{ var('tier_high_share') }} * customers_in_month) then 'high'
        when value_rank <= round(({{ var('tier_high_share') }} + {{ var('tier_mid_share') }}) * customers_in_month)
            then 'mid'
        else 'low'
    end as value_tier,
    cast(round(100.0 * (customers_in_month - value_rank) / greatest(customers_in_month - 1, 1), 1)
        as decimal(4, 1)) as value_score,
    value_rank,
    rfm_weighted_score,
    rfm_cell,
    monetary_12m,
    profit_contribution_12m,
    'rfm-weighted-v0' as model_version,
    true as tiered_by_rule
from ranked

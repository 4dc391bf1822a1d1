-- Every ranking the backtest judges, customer by customer, with the value each customer then
-- realised over the months the predicted value stands for (value_horizon_months): the published
-- tiers ('tiers': the champion's predictions as the bank received them, cut plainly: plain_tier,
-- so that every ranking is judged on the same cut; how the stable tiers fare is
-- eval_tier_stability_monthly's), the challenger on the same customers where it predicts the same
-- months of value ('challenger', marts.customer_tiers_challenger) and the weighted-RFM baseline
-- ('rfm', marts.customer_tiers_rfm), once the horizon has passed. The RFM score ranks; it is no
-- value, so it has no predicted value. Tiers scored before plain_tier existed were cut plainly.
-- The outcomes are a subquery in each branch, not a CTE the three share: DuckDB materialises a CTE
-- read more than once, and a reader's month filter then applied after the joins to the tiers, over
-- every month of the history (int_backtest_tiers took 7.4 s of a new month at 1,000,000 x 36,
-- against 2.5 s at 12 months).
{{ config(materialized='view') }}
{% set outcomes -%}
    (select * from {{ ref('int_tier_outcomes') }} where value_over_horizon is not null)
{%- endset %}

select
    'tiers' as ranking,
    o.customer_id,
    o.month_start,
    cast(o.predicted_value as double) as score,
    cast(o.predicted_value as double) as predicted_value,
    coalesce(t.plain_tier, o.value_tier) as predicted_tier,
    o.value_horizon_months,
    o.value_measure,
    cast(o.value_over_horizon as double) as realised_value
from {{ outcomes }} as o
inner join {{ source('marts', 'customer_tiers') }} as t
    on t.customer_id = o.customer_id and t.month_start = o.month_start

union all

select
    'rfm' as ranking,
    o.customer_id,
    o.month_start,
    cast(r.rfm_weighted_score as double) as score,
    cast(null as double) as predicted_value,
    r.value_tier as predicted_tier,
    o.value_horizon_months,
    o.value_measure,
    cast(o.value_over_horizon as double) as realised_value
from {{ outcomes }} as o
inner join {{ ref('customer_tiers_rfm') }} as r
    on r.customer_id = o.customer_id and r.month_start = o.month_start

union all

select
    'challenger' as ranking,
    o.customer_id,
    o.month_start,
    cast(c.predicted_value as double) as score,
    cast(c.predicted_value as double) as predicted_value,
    c.value_tier as predicted_tier,
    o.value_horizon_months,
    o.value_measure,
    cast(o.value_over_horizon as double) as realised_value
from {{ outcomes }} as o
inner join {{ source('marts', 'customer_tiers_challenger') }} as c
    on c.customer_id = o.customer_id
    and c.month_start = o.month_start
    and c.value_horizon_months = o.value_horizon_months

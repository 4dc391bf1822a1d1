{{ incremental_by_month() }}
-- The backtest of every scored month whose value horizon has passed: how well each ranking (the
-- published tiers, and the weighted-RFM baseline on the same customers) ordered the value the
-- customers then realised. Normalized Gini of the ranking against realised value (1 perfect, 0
-- random); tier accuracy (predicted tier = realised tier); the share of realised value the
-- predicted high tier holds; and the high tier's precision.
with scores as (
    select *
    from {{ ref('int_backtest_tiers') }}
    where {{ in_evaluated_months('month_start') }}
),

by_ranking as (
    {{ lorenz_gini('scores', ['ranking', 'month_start'], 'score', 'realised_value') }}
),

best_possible as (
    {{ lorenz_gini('scores', ['ranking', 'month_start'], 'realised_value', 'realised_value') }}
),

summary as (
    select
        ranking,
        month_start,
        min(value_horizon_months) as value_horizon_months,
        any_value(value_measure) as value_measure,
        count(*) as customers,
        avg(case when predicted_tier = realised_tier then 1.0 else 0.0 end) as tier_accuracy,
        sum(realised_value) filter (where predicted_tier = 'high') / nullif(sum(realised_value), 0)
            as high_tier_value_capture,
        count(*) filter (where predicted_tier = 'high' and realised_tier = 'high')
            / nullif(count(*) filter (where predicted_tier = 'high'), 0) as high_tier_precision,
        sum(realised_value) as realised_value
    from scores
    group by ranking, month_start
)

select
    s.month_start,
    s.ranking,
    s.value_horizon_months,
    s.value_measure,
    s.customers,
    cast(round(g.gini / nullif(b.gini, 0), 4) as decimal(6, 4)) as normalized_gini,
    cast(round(s.tier_accuracy, 4) as decimal(5, 4)) as tier_accuracy,
    cast(round(s.high_tier_value_capture, 4) as decimal(5, 4)) as high_tier_value_capture,
    cast(round(s.high_tier_precision, 4) as decimal(5, 4)) as high_tier_precision,
    cast(round(s.realised_value, 2) as decimal(18, 2)) as realised_value
from summary as s
inner join by_ranking as g
    on g.ranking = s.ranking and g.month_start = s.month_start
inner join best_possible as b
    on b.ranking = s.ranking and b.month_start = s.month_start

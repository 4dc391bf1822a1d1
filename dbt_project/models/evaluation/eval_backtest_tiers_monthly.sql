{{ incremental_by_month() }}
-- Predicted against realised tier for every scored month whose value horizon has passed: customers
-- by the tier they were given and the tier their realised value earned, for each ranking.
select
    month_start,
    ranking,
    predicted_tier,
    realised_tier,
    count(*) as customers,
    cast(round(count(*) / sum(count(*)) over (partition by month_start, ranking, predicted_tier), 4)
        as decimal(5, 4)) as share_of_predicted_tier
from {{ ref('int_backtest_tiers') }}
where {{ in_evaluated_months('month_start') }}
group by month_start, ranking, predicted_tier, realised_tier

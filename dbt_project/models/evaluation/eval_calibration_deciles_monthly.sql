{{ incremental_by_month() }}
-- The decile calibration of the published predicted value, for every scored month whose value
-- horizon has passed: customers cut into ten equal groups by predicted value (decile 1 the highest,
-- ties by customer id), with the mean predicted and mean realised value of each, over the same
-- months (value_horizon_months) in the same value measure. Calibrated: the two means agree.
with deciles as (
    select
        month_start,
        predicted_value,
        realised_value,
        ntile(10) over (partition by month_start order by predicted_value desc, customer_id asc) as decile
    from {{ ref('int_backtest_scores') }}
    where ranking = 'tiers'
      and {{ in_evaluated_months('month_start', as_dates=true) }}
)

select
    month_start,
    decile,
    count(*) as customers,
    cast(round(avg(predicted_value), 2) as decimal(18, 2)) as mean_predicted_value,
    cast(round(avg(realised_value), 2) as decimal(18, 2)) as mean_realised_value,
    cast(round(avg(realised_value) / nullif(avg(predicted_value), 0), 4) as decimal(10, 4)) as realised_to_predicted
from deciles
group by month_start, decile

-- The backtest's rankings with the tier each customer's realised value earned: the month's
-- customers ranked by realised value (highest first, ties by customer id) and cut into the same
-- shares as the tiers (vars tier_high_share, tier_mid_share).
-- Stored by month, a run rewriting the months it evaluates: as a view, the ranking ran over every
-- month of the history on each read, since a reader's month filter does not reach below it (2.8 s
-- of a new month at 100,000 x 36, against 1.0 s at 12 months).
{{ incremental_by_month() }}
{% set high = var('tier_high_share') %}
{% set mid = var('tier_mid_share') %}

with ranked as (
    select
        *,
        row_number() over (
            partition by ranking, month_start order by realised_value desc, customer_id asc
        ) as realised_rank,
        count(*) over (partition by ranking, month_start) as customers_in_month
    from {{ ref('int_backtest_scores') }}
    where {{ in_evaluated_months('month_start', as_dates=true) }}
)

select
    *,
    case
        when realised_rank <= round({{ high }} * customers_in_month) then 'high'
        when realised_rank <= round(({{ high }} + {{ mid }}) * customers_in_month) then 'mid'
        else 'low'
    end as realised_tier
from ranked

{{ incremental_by_month() }}
-- The tier migration matrix: customers by last processed month's tier (or 'new') and this month's
-- tier (or 'churned'), with each cell's share of its 'from' row, and how many moved up or down.
select
    month_start,
    from_tier,
    to_tier,
    any_value(direction) as direction,
    count(*) as customers,
    cast(round(count(*) / sum(count(*)) over (partition by month_start, from_tier), 4) as decimal(5, 4))
        as share_of_from_tier,
    count(*) filter (where moved_two_tiers) as moved_two_tiers
from {{ ref('int_tier_moves') }}
where {{ in_moved_months('month_start') }}
group by month_start, from_tier, to_tier

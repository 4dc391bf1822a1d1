{{ incremental_by_month() }}
-- Each customer's move from the previous processed month's tier to this month's: 'new' when the
-- customer was not tiered last month, 'churned' when no longer tiered (no longer live) this month.
-- A month's moves need the month before, so a run of months S..E rewrites S..E and the month after
-- E, whose 'from' side it may have rescored. The first processed month has no moves.
with months as (
    select month_start, lag(month_start) over (order by month_start) as previous_month
    from {{ ref('int_months') }}
),

moved_months as (
    select month_start, previous_month
    from months
    where previous_month is not null
      and {{ in_moved_months('month_start') }}
),

this_month as (
    select t.customer_id, m.month_start, t.value_tier
    from {{ source('marts', 'customer_tiers') }} as t
    inner join moved_months as m
        on m.month_start = t.month_start
),

last_month as (
    select t.customer_id, m.month_start, t.value_tier
    from {{ source('marts', 'customer_tiers') }} as t
    inner join moved_months as m
        on m.previous_month = t.month_start
),

{%- set rank_now = "case now.value_tier when 'high' then 3 when 'mid' then 2 else 1 end" %}
{%- set rank_before = "case before.value_tier when 'high' then 3 when 'mid' then 2 else 1 end" %}

moves as (
    select
        coalesce(now.customer_id, before.customer_id) as customer_id,
        coalesce(now.month_start, before.month_start) as month_start,
        before.value_tier as before_tier,
        now.value_tier as now_tier,
        {{ rank_now }} - {{ rank_before }} as tiers_moved
    from this_month as now
    full outer join last_month as before
        on before.customer_id = now.customer_id and before.month_start = now.month_start
)

select
    customer_id,
    month_start,
    coalesce(before_tier, 'new') as from_tier,
    coalesce(now_tier, 'churned') as to_tier,
    case
        when before_tier is null then 'new'
        when now_tier is null then 'churned'
        when tiers_moved > 0 then 'up'
        when tiers_moved < 0 then 'down'
        else 'same'
    end as direction,
    coalesce(abs(tiers_moved) = 2 and before_tier is not null and now_tier is not null, false) as moved_two_tiers
from moves

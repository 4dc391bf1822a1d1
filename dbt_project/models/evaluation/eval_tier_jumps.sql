{{ incremental_by_month() }}
-- The customers who moved two tiers in a month (high to low, or low to high): the ones a relationship
-- manager looks at first. No personal data: the customer id and the tiers.
select
    m.customer_id,
    m.month_start,
    m.from_tier,
    m.to_tier,
    m.direction,
    t.segment,
    t.predicted_value,
    t.churn_probability
from {{ ref('int_tier_moves') }} as m
inner join {{ source('marts', 'customer_tiers') }} as t
    on t.customer_id = m.customer_id and t.month_start = m.month_start
where m.moved_two_tiers
  and {{ in_moved_months('m.month_start') }}

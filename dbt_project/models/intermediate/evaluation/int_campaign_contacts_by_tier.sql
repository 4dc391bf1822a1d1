-- Every campaign contact (both groups of an A/B campaign) beside the scored month it follows: a
-- campaign sent in month M+1 reached the customers as month M tiered them ('untiered' for those
-- who joined after M). The campaign evaluations read the months they rewrite from it.
-- Stored by month, a run rewriting the months it evaluates (their tiers may have been rescored):
-- as a view, every read joined the contacts of the whole history to the tiers before a reader's
-- month filter applied, so a new month's campaign evaluation grew with the history. Months after
-- is capped at the longest outcome window, as int_tier_outcomes caps it: a month's rows stop
-- changing once its windows have closed.
{{ incremental_by_month() }}
{% set longest = longest_outcome_window() %}

with months as (
    select * from {{ ref('int_evaluation_months') }}
)

select
    m.month_start,
    m.month_index,
    least(m.months_after, {{ longest }}) as months_after,
    m.uses_profit,
    c.contact_id,
    c.customer_id,
    c.campaign_id,
    c.product_offered,
    c.test_group,
    c.ab_group,
    c.sent_at,
    c.responded_at,
    c.converted_at,
    c.cost,
    coalesce(t.value_tier, 'untiered') as value_tier
from months as m
inner join months as sent
    on sent.month_index = m.month_index + 1
inner join {{ ref('stg_campaign_contacts') }} as c
    on c.sent_at >= sent.month_start and c.sent_at < {{ dbt.dateadd('month', 1, 'sent.month_start') }}
left join {{ source('marts', 'customer_tiers') }} as t
    on t.customer_id = c.customer_id and t.month_start = m.month_start
    and {{ in_evaluated_months('t.month_start') }}
where {{ in_evaluated_months('m.month_start') }}

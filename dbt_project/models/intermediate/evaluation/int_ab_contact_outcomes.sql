-- Every contact of an A/B campaign (one that holds out a control group: contacts with test_group
-- 'control', selected and not contacted) beside the scored month it follows, and whether the
-- customer converted: opened an account of the offered product between the send and the end of the
-- outcome window (var outcome_months after the scored month), measured alike in both groups, since
-- control customers never answer a contact; null without an accounts delivery. The A/B evaluation
-- and the campaign targeting read it. (The uplift model, which learns before the tiers exist,
-- measures conversion the same way from staging: valuetier/tiering/uplift.py.)
-- Stored by month, a run rewriting the months it evaluates: as a view, each of its readers and
-- tests joined every contact of the history to the accounts before a month filter applied.
{{ incremental_by_month() }}
{% set k = var('outcome_months') %}

with ab_campaigns as (
    select campaign_id
    from {{ ref('stg_campaign_contacts') }}
    group by campaign_id
    having count(*) filter (where ab_group = 'control') > 0
),

contacts as (
    select
        c.month_start,
        c.month_index,
        c.months_after,
        c.uses_profit,
        {{ dbt.dateadd('month', k + 1, 'c.month_start') }} as window_end,
        c.contact_id,
        c.customer_id,
        c.campaign_id,
        c.product_offered,
        c.sent_at,
        -- true for treatment, false for control, null for a row in neither group (left out of both).
        case c.ab_group when 'treatment' then true when 'control' then false end as treated,
        c.cost,
        c.value_tier
    from {{ ref('int_campaign_contacts_by_tier') }} as c
    inner join ab_campaigns as ab
        on ab.campaign_id = c.campaign_id
    where {{ in_evaluated_months('c.month_start') }}
),

accounts_delivered as (
    select count(*) > 0 as delivered from {{ ref('stg_accounts') }}
),

openings as (
    select distinct c.contact_id
    from contacts as c
    inner join {{ ref('stg_accounts') }} as a
        on
            a.customer_id = c.customer_id
            and a.product_type = c.product_offered
            and a.opened_at >= cast(c.sent_at as date)
            and a.opened_at < c.window_end
)

select
    c.*,
    case when d.delivered then cast(o.contact_id is not null as integer) end as converted
from contacts as c
cross join accounts_delivered as d
left join openings as o on o.contact_id = c.contact_id

-- Every tiered customer an A/B campaign selected (treated or held out as control), whose outcome
-- window has passed, and whether each of three ways of choosing the same number of contacts among
-- the campaign's selected customers would have chosen them: by the customer's predicted uplift for
-- the offered product (marts.customer_uplift_monthly of the month the campaign selected from), at
-- random within tier (each tier's share var targeting_contact_share, by a hash of campaign and
-- customer: repeatable on every engine), and by value tier alone (high first, the same hash within
-- a tier). Choosing among both groups keeps the control design: the chosen treated against the
-- chosen controls measure what contacting the chosen brings. Conversion as
-- eval_campaign_ab_monthly measures it; null without an accounts delivery.
{{ config(materialized='view') }}
{% set k = var('outcome_months') %}
{% set share = var('targeting_contact_share') %}

with ab_campaigns as (
    select campaign_id
    from {{ ref('stg_campaign_contacts') }}
    group by campaign_id
    having count(*) filter (where ab_group = 'control') > 0
),

selected as (
    select
        c.month_start,
        c.contact_id,
        c.customer_id,
        c.campaign_id,
        c.product_offered,
        c.sent_at,
        c.value_tier,
        c.ab_group = 'treatment' as treated,
        {{ dbt.dateadd('month', k + 1, 'c.month_start') }} as window_end
    from {{ ref('int_campaign_contacts_by_tier') }} as c
    inner join ab_campaigns as ab
        on ab.campaign_id = c.campaign_id
    where
        c.ab_group in ('treatment', 'control')
        and c.value_tier != 'untiered'
        and c.months_after >= {{ k }}
),

accounts_delivered as (
    select count(*) > 0 as delivered from {{ ref('stg_accounts') }}
),

openings as (
    select distinct s.contact_id
    from selected as s
    inner join {{ ref('stg_accounts') }} as a
        on
            a.customer_id = s.customer_id
            and a.product_type = s.product_offered
            and a.opened_at >= cast(s.sent_at as date)
            and a.opened_at < s.window_end
),

scored as (
    select
        s.month_start,
        s.contact_id,
        s.customer_id,
        s.campaign_id,
        s.product_offered,
        s.value_tier,
        s.treated,
        case when d.delivered then cast(o.contact_id is not null as integer) end as converted,
        {{ uplift_for_product('s.product_offered', 'u') }} as predicted_uplift,
        {{ dbt.hash(dbt.concat(["s.campaign_id", "'/'", "s.customer_id"])) }} as draw,
        case s.value_tier when 'high' then 1 when 'mid' then 2 else 3 end as tier_order
    from selected as s
    cross join accounts_delivered as d
    left join openings as o on o.contact_id = s.contact_id
    left join {{ source('marts', 'customer_uplift_monthly') }} as u
        on u.customer_id = s.customer_id and u.month_start = s.month_start
),

tier_sizes as (
    select
        month_start,
        campaign_id,
        value_tier,
        cast(round(count(*) * {{ share }}) as integer) as tier_picks
    from scored
    group by month_start, campaign_id, value_tier
),

campaign_sizes as (
    select
        month_start,
        campaign_id,
        sum(tier_picks) as chosen_contacts
    from tier_sizes
    group by month_start, campaign_id
),

ranked as (
    select
        s.*,
        t.tier_picks,
        c.chosen_contacts,
        row_number() over (
            partition by s.month_start, s.campaign_id, s.value_tier order by s.draw asc, s.contact_id asc
        ) as draw_rank_in_tier,
        row_number() over (
            partition by s.month_start, s.campaign_id order by s.tier_order asc, s.draw asc, s.contact_id asc
        ) as tier_rank,
        case when s.predicted_uplift is not null
                then row_number() over (
                    partition by s.month_start, s.campaign_id
                    order by s.predicted_uplift desc nulls last, s.contact_id asc
                )
        end as uplift_rank
    from scored as s
    inner join tier_sizes as t
        on t.month_start = s.month_start and t.campaign_id = s.campaign_id and t.value_tier = s.value_tier
    inner join campaign_sizes as c
        on c.month_start = s.month_start and c.campaign_id = s.campaign_id
)

select
    month_start,
    campaign_id,
    contact_id,
    customer_id,
    product_offered,
    value_tier,
    treated,
    converted,
    predicted_uplift,
    uplift_rank,
    uplift_rank <= chosen_contacts as chosen_by_uplift,
    draw_rank_in_tier <= tier_picks as chosen_at_random_within_tier,
    tier_rank <= chosen_contacts as chosen_by_tier
from ranked

-- Every tiered customer an A/B campaign selected (treated or held out as control), whose outcome
-- window has passed, and whether each of three ways of choosing the same number of contacts among
-- the campaign's selected customers would have chosen them: by the customer's predicted uplift for
-- the offered product (marts.customer_uplift_monthly of the month the campaign selected from), at
-- random within tier (each tier's share var targeting_contact_share, by a hash of campaign and
-- customer: repeatable on every engine), and by value tier alone (high first, the same hash within
-- a tier). Choosing among both groups keeps the control design: the chosen treated against the
-- chosen controls measure what contacting the chosen brings. Conversion as int_ab_contact_outcomes
-- measures it; null without an accounts delivery.
-- Stored, not a view: its tests and the mart each read it, where a view computed the whole history
-- again for every one of them (3.6 s of a new month's 15 s evaluation at 100,000 x 36). By month: a
-- run rewrites the months it evaluates (a month's choices change until its outcome window closes),
-- so a new month's cost does not grow with the history.
{{ incremental_by_month() }}
{% set k = var('outcome_months') %}
{% set share = var('targeting_contact_share') %}

with selected as (
    select *
    from {{ ref('int_ab_contact_outcomes') }}
    where
        treated is not null
        and value_tier != 'untiered'
        and months_after >= {{ k }}
        and {{ in_evaluated_months('month_start') }}
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
        s.converted,
        {{ uplift_for_product('s.product_offered', 'u') }} as predicted_uplift,
        {{ dbt.hash(dbt.concat(["s.campaign_id", "'/'", "s.customer_id"])) }} as draw,
        case s.value_tier when 'high' then 1 when 'mid' then 2 else 3 end as tier_order
    from selected as s
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

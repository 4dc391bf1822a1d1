{{ incremental_by_month() }}
-- Whom a campaign should contact: for every A/B campaign (one row per scored month and campaign of
-- the following month), three ways of choosing the same number of contacts among the tiered
-- customers it selected (int_campaign_targeting_choices: by predicted uplift, at random within
-- tier, by value tier alone), each judged on the control design: the chosen treated customers'
-- conversion minus the chosen controls', the incremental conversions per contact. With the Qini
-- coefficient of the uplift ranking over all the campaign's selected customers: the area between
-- its Qini curve (incremental conversions among the top-ranked, treated conversions less control
-- conversions scaled to the treated count) and the straight line of a random ranking, both axes
-- as shares of the selected customers; above zero, the ranking finds the persuadable first.
-- A month without an uplift model (no control groups with a closed window yet, or none at all)
-- keeps its rows, with targeting_basis 'tier rule' and the uplift figures null.
{% set k = var('outcome_months') %}
{% set ways = {'uplift': 'chosen_by_uplift', 'random': 'chosen_at_random_within_tier', 'tier': 'chosen_by_tier'} %}

-- Sums of doubles depend in their last digits on the order parallel threads add them in; the
-- predicted uplift and the Qini curve's points are summed as decimals of 15 and 12 places instead,
-- exactly, so that a month built again gives the same bytes.
with choices as (
    select
        *,
        cast(predicted_uplift as decimal(18, 15)) as predicted_uplift_exact
    from {{ ref('int_campaign_targeting_choices') }}
    where {{ in_evaluated_months('month_start') }}
),

qini_curve as (
    select
        month_start,
        campaign_id,
        sum(case when treated then 1 else 0 end) over (
            partition by month_start, campaign_id order by uplift_rank asc rows unbounded preceding
        ) as treated_so_far,
        sum(case when not treated then 1 else 0 end) over (
            partition by month_start, campaign_id order by uplift_rank asc rows unbounded preceding
        ) as controls_so_far,
        sum(case when treated then converted else 0 end) over (
            partition by month_start, campaign_id order by uplift_rank asc rows unbounded preceding
        ) as treated_conversions_so_far,
        sum(case when not treated then converted else 0 end) over (
            partition by month_start, campaign_id order by uplift_rank asc rows unbounded preceding
        ) as control_conversions_so_far
    from choices
    where uplift_rank is not null
),

qini_areas as (
    select
        month_start,
        campaign_id,
        count(*) as ranked_contacts,
        sum(
            cast(
                case
                    when controls_so_far > 0
                        then treated_conversions_so_far
                        - cast(control_conversions_so_far as double) * treated_so_far / controls_so_far
                    else 0
                end as decimal(38, 12)
            )
        ) as curve_sum,
        -- The curve's end: every ranked contact (the cumulative counts only grow).
        max(treated_conversions_so_far)
        - cast(max(control_conversions_so_far) as double) * max(treated_so_far) / nullif(max(controls_so_far), 0)
            as curve_end
    from qini_curve
    group by month_start, campaign_id
),

groups as (
    select
        month_start,
        campaign_id,
        count(*) as selected_contacts,
        count(predicted_uplift) as contacts_with_uplift,
        count(*) filter (where chosen_at_random_within_tier) as chosen_contacts,
        count(*) filter (where treated) as treated,
        count(*) filter (where not treated) as controls,
        cast(sum(converted) filter (where treated) as bigint) as treated_conversions,
        cast(sum(converted) filter (where not treated) as bigint) as control_conversions,
        {%- for way, flag in ways.items() %}
        count(*) filter (where {{ flag }} and treated) as {{ way }}_treated,
        count(*) filter (where {{ flag }} and not treated) as {{ way }}_controls,
        cast(sum(converted) filter (where {{ flag }} and treated) as bigint) as {{ way }}_treated_conversions,
        cast(sum(converted) filter (where {{ flag }} and not treated) as bigint) as {{ way }}_control_conversions,
        cast(avg(predicted_uplift_exact) filter (where {{ flag }}) as double) as {{ way }}_predicted_uplift,
        {%- endfor %}
        cast(avg(predicted_uplift_exact) as double) as all_predicted_uplift
    from choices
    group by month_start, campaign_id
)

select
    g.month_start,
    g.campaign_id,
    cast({{ k }} as integer) as outcome_months,
    case when g.contacts_with_uplift > 0 then 'uplift' else 'tier rule' end as targeting_basis,
    g.selected_contacts,
    g.chosen_contacts,
    cast(g.chosen_contacts as double) / g.selected_contacts as contact_share,
    g.treated,
    g.controls,
    g.treated_conversions,
    g.control_conversions,
    cast(g.treated_conversions as double) / nullif(g.treated, 0)
    - cast(g.control_conversions as double) / nullif(g.controls, 0) as all_incremental_per_contact,
    {%- for way in ways %}
    g.{{ way }}_treated,
    g.{{ way }}_controls,
    g.{{ way }}_treated_conversions,
    g.{{ way }}_control_conversions,
    cast(g.{{ way }}_treated_conversions as double) / nullif(g.{{ way }}_treated, 0)
    - cast(g.{{ way }}_control_conversions as double) / nullif(g.{{ way }}_controls, 0)
        as {{ way }}_incremental_per_contact,
    g.{{ way }}_predicted_uplift,
    {%- endfor %}
    g.all_predicted_uplift,
    -- The mean of the curve's points, less the random line's mean (half its end), over the customers.
    -- Null without an accounts delivery (no conversion is known).
    case
        when g.treated_conversions is not null
            then (cast(q.curve_sum as double) / q.ranked_contacts - q.curve_end / 2) / q.ranked_contacts
    end as qini_coefficient
from groups as g
left join qini_areas as q
    on q.month_start = g.month_start and q.campaign_id = g.campaign_id

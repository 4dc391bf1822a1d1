{{ incremental_by_month() }}
-- A/B evaluation of the campaigns that hold out a control group (contacts with test_group
-- 'control': selected, not contacted), treatment against control only: per scored month, campaign
-- of the following month and the tier the customers held in the scored month ('all' for the
-- campaign's total), the treated and control groups' conversion and value over the outcome window
-- (var outcome_months), and the uplift (treated minus control) with a normal confidence interval
-- (var ab_confidence_z; Welch's standard error for value). Conversion as int_ab_contact_outcomes
-- measures it, alike in both groups (null without an accounts delivery). Value is the scored
-- month's value measure over the window, zero for a customer with no transactions.
{% set k = var('outcome_months') %}
{% set z = var('ab_confidence_z') %}

with months as (
    select * from {{ ref('int_evaluation_months') }}
),

selected as (
    select *
    from {{ ref('int_ab_contact_outcomes') }}
    where {{ in_evaluated_months('month_start') }}
      and months_after >= {{ k }}
),

window_value as (
    select
        s.contact_id,
        sum(case when s.uses_profit then x.profit_contribution else x.transaction_amount end) as value
    from selected as s
    inner join {{ ref('int_transactions_by_customer_month') }} as x
        on x.customer_id = s.customer_id
    inner join months as m
        on m.month_start = x.month_start
        and m.month_index between s.month_index + 1 and s.month_index + {{ k }}
    group by s.contact_id
),

outcomes as (
    select
        s.*,
        cast(coalesce(v.value, 0) as decimal(18, 2)) as value
    from selected as s
    left join window_value as v on v.contact_id = s.contact_id
),

groups as (
    select
        month_start,
        campaign_id,
        case when grouping(value_tier) = 1 then 'all' else value_tier end as value_tier,
        count(*) filter (where treated) as treated,
        count(*) filter (where not treated) as controls,
        count(*) filter (where treated is null) as outside_groups,
        avg(converted) filter (where treated) as p_t,
        avg(converted) filter (where not treated) as p_c,
        -- Sums of cents and of their squares are exact, so the means and variances do not depend on
        -- the order parallel threads add them in (var_samp over doubles does, in its last digits).
        sum(value) filter (where treated) as sum_t,
        sum(value) filter (where not treated) as sum_c,
        sum(value * value) filter (where treated) as sum_squares_t,
        sum(value * value) filter (where not treated) as sum_squares_c,
        sum(cost) filter (where treated is not null) as cost
    from outcomes
    group by grouping sets ((month_start, campaign_id, value_tier), (month_start, campaign_id))
),

moments as (
    select
        *,
        cast(sum_t as double) / treated as value_t,
        cast(sum_c as double) / controls as value_c,
        cast(treated * sum_squares_t - sum_t * sum_t as double) / nullif(treated * (treated - 1), 0) as var_t,
        cast(controls * sum_squares_c - sum_c * sum_c as double) / nullif(controls * (controls - 1), 0) as var_c
    from groups
),

uplifts as (
    select
        *,
        p_t - p_c as conversion_uplift,
        sqrt(p_t * (1 - p_t) / treated + p_c * (1 - p_c) / controls) as conversion_se,
        value_t - value_c as value_uplift,
        sqrt(var_t / treated + var_c / controls) as value_se
    from moments
    where treated > 0 and controls > 0
)

select
    month_start,
    campaign_id,
    value_tier,
    {{ k }} as outcome_months,
    treated,
    controls,
    outside_groups,
    cast(round(p_t, 4) as decimal(7, 4)) as treated_conversion_rate,
    cast(round(p_c, 4) as decimal(7, 4)) as control_conversion_rate,
    cast(round(conversion_uplift, 4) as decimal(7, 4)) as conversion_uplift,
    cast(round(conversion_uplift - {{ z }} * conversion_se, 4) as decimal(7, 4)) as conversion_uplift_low,
    cast(round(conversion_uplift + {{ z }} * conversion_se, 4) as decimal(7, 4)) as conversion_uplift_high,
    cast(round(value_t, 2) as decimal(18, 2)) as treated_mean_value,
    cast(round(value_c, 2) as decimal(18, 2)) as control_mean_value,
    cast(round(value_uplift, 2) as decimal(18, 2)) as value_uplift,
    cast(round(value_uplift - {{ z }} * value_se, 2) as decimal(18, 2)) as value_uplift_low,
    cast(round(value_uplift + {{ z }} * value_se, 2) as decimal(18, 2)) as value_uplift_high,
    cast(round(conversion_uplift * treated, 1) as decimal(18, 1)) as incremental_conversions,
    cast(round(value_uplift * treated, 2) as decimal(18, 2)) as incremental_value,
    cast(cost as decimal(18, 2)) as cost
from uplifts

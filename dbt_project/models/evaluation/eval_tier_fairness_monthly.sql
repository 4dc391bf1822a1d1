{{ incremental_by_month() }}
-- The fairness review of every scored month: for each attribute the delivery carries (age band from
-- the birth year, income band, risk profile, city; valuetier.core.parameters.FAIRNESS_ATTRIBUTES)
-- and each of its groups, the share of the group's customers in each tier and given each pricing
-- and service level of the playbook, against the most favoured group's share (the disparity
-- ratio), with the ratio's confidence bounds and predicted value per customer as context.
-- The bounds are Katz's log interval (half a customer added to each count: defined at a zero),
-- simultaneous over the month's comparisons of an attribute: every ordered pair of judged groups
-- for every reviewed action, Bonferroni, so that a tiering that treats the groups alike is flagged
-- in a month with at most var fairness_false_alarm_rate chance.
-- Attributes are as delivered by the scored month (point in time); personal data never: bands and
-- codes only. A customer without a value for an attribute is in none of its groups.
-- A flagged row: a reviewed action (var fairness_reviewed_actions) for a protected attribute's group
-- (var fairness_protected_attributes) whose ratio is under var fairness_min_ratio even at its upper
-- bound.
{% set bands = var('fairness_age_bands') %}
{% set attributes = ['age_band', 'income_band', 'risk_profile', 'city'] %}
{% set protected = "attribute in ('" ~ var('fairness_protected_attributes') | join("', '") ~ "')" %}
{% set action = "outcome_kind || ':' || outcome in ('" ~ var('fairness_reviewed_actions') | join("', '") ~ "')" %}

with tiers as (
    select t.customer_id, t.month_start, t.value_tier, t.predicted_value
    from {{ source('marts', 'customer_tiers') }} as t
    where {{ in_month_window('t.month_start') }}
),

actions as (
    select a.customer_id, a.month_start, a.pricing_treatment, a.service_level
    from {{ source('marts', 'crm_actions') }} as a
    where {{ in_month_window('a.month_start') }}
),

-- Each delivered version of a customer's record, valid from its delivery month to the next one's.
versions as (
    select
        customer_id,
        delivery_month,
        lead(delivery_month) over (partition by customer_id order by delivery_month asc) as next_delivery_month,
        birth_year,
        income_band,
        risk_profile,
        city
    from {{ ref('stg_customers') }}
),

attributed as (
    select
        t.month_start,
        t.value_tier,
        a.pricing_treatment,
        a.service_level,
        t.predicted_value,
        case
            when v.birth_year is null then null
            {%- for upper in bands %}
            when extract(year from t.month_start) - v.birth_year < {{ upper }}
                then '{{ "under " ~ upper if loop.first else bands[loop.index0 - 1] ~ "-" ~ (upper - 1) }}'
            {%- endfor %}
            else '{{ bands[-1] }} and over'
        end as age_band,
        v.income_band,
        v.risk_profile,
        v.city
    from tiers as t
    left join actions as a
        on a.customer_id = t.customer_id and a.month_start = t.month_start
    left join versions as v
        on
            v.customer_id = t.customer_id
            and v.delivery_month <= t.month_start
            and (v.next_delivery_month is null or v.next_delivery_month > t.month_start)
),

-- Customers by every combination first (a few thousand a month), then by each attribute.
combinations as (
    select
        month_start, value_tier, pricing_treatment, service_level, {{ attributes | join(', ') }},
        count(*) as customers,
        sum(predicted_value) as predicted_value
    from attributed
    group by month_start, value_tier, pricing_treatment, service_level, {{ attributes | join(', ') }}
),

by_group as (
    {%- for attribute in attributes %}
    select
        month_start,
        '{{ attribute }}' as attribute,
        cast({{ attribute }} as {{ dbt.type_string() }}) as attribute_group,
        value_tier,
        pricing_treatment,
        service_level,
        customers,
        predicted_value
    from combinations
    where {{ attribute }} is not null
    {{ "union all" if not loop.last }}
    {%- endfor %}
),

groups as (
    select
        month_start,
        attribute,
        attribute_group,
        sum(customers) as customers,
        sum(predicted_value) / sum(customers) as predicted_value_per_customer
    from by_group
    group by month_start, attribute, attribute_group
),

-- Every outcome given to anyone in the month, for every group: a group given none of it has a 0 share.
outcomes as (
    select distinct month_start, 'tier' as outcome_kind, value_tier as outcome from tiers
    union all
    select distinct month_start, 'pricing' as outcome_kind, pricing_treatment as outcome from actions
    union all
    select distinct month_start, 'service_level' as outcome_kind, service_level as outcome from actions
),

given as (
    select month_start, attribute, attribute_group, 'tier' as outcome_kind, value_tier as outcome, customers
    from by_group
    union all
    select month_start, attribute, attribute_group, 'pricing' as outcome_kind, pricing_treatment as outcome, customers
    from by_group
    where pricing_treatment is not null
    union all
    select month_start, attribute, attribute_group, 'service_level' as outcome_kind, service_level as outcome, customers
    from by_group
    where service_level is not null
),

given_counts as (
    select month_start, attribute, attribute_group, outcome_kind, outcome, sum(customers) as customers_given
    from given
    group by month_start, attribute, attribute_group, outcome_kind, outcome
),

shares as (
    select
        g.month_start,
        g.attribute,
        g.attribute_group,
        o.outcome_kind,
        o.outcome,
        g.customers,
        coalesce(n.customers_given, 0) as customers_given,
        coalesce(n.customers_given, 0) / g.customers as outcome_share,
        g.customers >= {{ var('fairness_min_group_customers') }} as judged,
        g.predicted_value_per_customer
    from groups as g
    inner join outcomes as o
        on o.month_start = g.month_start
    left join given_counts as n
        on
            n.month_start = g.month_start
            and n.attribute = g.attribute
            and n.attribute_group = g.attribute_group
            and n.outcome_kind = o.outcome_kind
            and n.outcome = o.outcome
),

-- The most favoured group of each attribute and outcome: the highest share among the groups judged.
ranked_shares as (
    select
        *,
        row_number() over (
            partition by month_start, attribute, outcome_kind, outcome
            order by outcome_share desc, attribute_group asc
        ) as favour_rank
    from shares
    where judged
),

favoured as (
    select
        month_start,
        attribute,
        outcome_kind,
        outcome,
        attribute_group as favoured_group,
        customers as favoured_customers,
        customers_given as favoured_given,
        outcome_share as favoured_share
    from ranked_shares
    where favour_rank = 1
),

-- The month's comparisons of each attribute: ordered pairs of judged groups, times the reviewed actions.
comparisons as (
    select
        month_start,
        attribute,
        greatest(count(*) * (count(*) - 1), 1) * {{ var('fairness_reviewed_actions') | length }} as comparisons
    from groups
    where customers >= {{ var('fairness_min_group_customers') }}
    group by month_start, attribute
),

ratios as (
    select
        s.*,
        {{ normal_upper_quantile("{} / c.comparisons".format(var('fairness_false_alarm_rate'))) }} as z,
        f.favoured_group,
        f.favoured_share,
        case when s.judged and f.favoured_share > 0 then s.outcome_share / f.favoured_share end as disparity_ratio,
        -- Katz's log interval of the ratio, half a customer added to each count
        ln((s.customers_given + 0.5) / (s.customers + 0.5))
        - ln((f.favoured_given + 0.5) / (f.favoured_customers + 0.5)) as log_ratio,
        sqrt(
            1 / (s.customers_given + 0.5) - 1 / (s.customers + 0.5)
            + 1 / (f.favoured_given + 0.5) - 1 / (f.favoured_customers + 0.5)
        ) as log_ratio_se
    from shares as s
    left join favoured as f
        on
            f.month_start = s.month_start
            and f.attribute = s.attribute
            and f.outcome_kind = s.outcome_kind
            and f.outcome = s.outcome
    left join comparisons as c
        on c.month_start = s.month_start and c.attribute = s.attribute
)

select
    month_start,
    attribute,
    attribute_group,
    outcome_kind,
    outcome,
    cast(customers as bigint) as customers,
    cast(customers_given as bigint) as customers_given,
    cast(round(outcome_share, 4) as decimal(5, 4)) as outcome_share,
    favoured_group,
    cast(round(favoured_share, 4) as decimal(5, 4)) as favoured_share,
    cast(round(disparity_ratio, 4) as decimal(9, 4)) as disparity_ratio,
    case
        when disparity_ratio is not null
            then cast(round(exp(log_ratio - z * log_ratio_se), 4) as decimal(9, 4))
    end as disparity_ratio_lower,
    case
        when disparity_ratio is not null
            then cast(round(exp(log_ratio + z * log_ratio_se), 4) as decimal(9, 4))
    end as disparity_ratio_upper,
    cast(round(predicted_value_per_customer, 2) as decimal(18, 2)) as predicted_value_per_customer,
    {{ protected }} and {{ action }} as reviewed,
    coalesce(
        {{ protected }} and {{ action }} and disparity_ratio is not null
        and exp(log_ratio + z * log_ratio_se) < {{ var('fairness_min_ratio') }},
        false
    ) as below_min_ratio
from ratios

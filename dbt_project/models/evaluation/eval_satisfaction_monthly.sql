{{ incremental_by_month() }}
-- Satisfaction by tier over the main outcome window (var outcome_months) after each scored month:
-- NPS survey answers (promoters 9-10, detractors 0-6; NPS = promoters minus detractors, per 100
-- answers) and service interactions opened in the window (complaints, mean satisfaction 1-5 of the
-- rated ones). Counts are zero and rates null where the optional sources were not delivered.
{% set k = var('outcome_months') %}

with tiered as (
    select
        customer_id,
        month_start,
        value_tier,
        cast({{ dbt.dateadd('month', 1, 'month_start') }} as timestamp) as window_start,
        cast({{ dbt.dateadd('month', k + 1, 'month_start') }} as timestamp) as window_end
    from {{ ref('int_tier_outcomes') }}
    where {{ in_evaluated_months('month_start') }}
      and months_observed >= {{ k }}
),

answers as (
    select
        t.month_start,
        t.value_tier,
        count(*) as answers,
        count(distinct n.customer_id) as answering_customers,
        count(*) filter (where n.score >= 9) as promoters,
        count(*) filter (where n.score <= 6) as detractors
    from tiered as t
    inner join {{ ref('stg_nps_responses') }} as n
        on n.customer_id = t.customer_id and n.answered_at >= t.window_start and n.answered_at < t.window_end
    group by t.month_start, t.value_tier
),

service as (
    select
        t.month_start,
        t.value_tier,
        count(*) as interactions,
        count(*) filter (where s.kind = 'complaint') as complaints,
        count(s.satisfaction) as rated_interactions,
        avg(s.satisfaction) as mean_satisfaction
    from tiered as t
    inner join {{ ref('stg_service_interactions') }} as s
        on s.customer_id = t.customer_id and s.opened_at >= t.window_start and s.opened_at < t.window_end
    group by t.month_start, t.value_tier
),

tiers as (
    select month_start, value_tier, count(*) as customers
    from tiered
    group by month_start, value_tier
)

select
    t.month_start,
    t.value_tier,
    {{ k }} as outcome_months,
    t.customers,
    coalesce(a.answers, 0) as nps_answers,
    coalesce(a.answering_customers, 0) as nps_answering_customers,
    coalesce(a.promoters, 0) as promoters,
    coalesce(a.answers - a.promoters - a.detractors, 0) as passives,
    coalesce(a.detractors, 0) as detractors,
    cast(round(100.0 * (a.promoters - a.detractors) / a.answers, 1) as decimal(5, 1)) as nps,
    coalesce(s.interactions, 0) as service_interactions,
    coalesce(s.complaints, 0) as complaints,
    cast(round(1000.0 * coalesce(s.complaints, 0) / t.customers, 1) as decimal(18, 1)) as complaints_per_1000_customers,
    coalesce(s.rated_interactions, 0) as rated_interactions,
    cast(round(s.mean_satisfaction, 2) as decimal(3, 2)) as mean_satisfaction
from tiers as t
left join answers as a
    on a.month_start = t.month_start and a.value_tier = t.value_tier
left join service as s
    on s.month_start = t.month_start and s.value_tier = t.value_tier

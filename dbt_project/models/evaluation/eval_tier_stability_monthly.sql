{{ incremental_by_month() }}
-- How still the tiers hold, month by month, for the published (stable) tiers and for the plain cut
-- the same ranking gives (marts.customer_tiers.plain_tier): tier changes since the month before,
-- A->B->A flips within two months, and the high tier's share of the value the month's customers
-- brought over the outcome window (var outcome_months), once that window has passed.
-- Months are calendar months: a customer untiered in the month before (new, or not live) has no
-- change. The plain cut's figures are null for a month whose plain tiers are not all known (tiers
-- scored before plain_tier existed, until rescored).
{% set k = var('outcome_months') %}

with tiers as (
    select t.customer_id, t.month_start, t.value_tier, t.plain_tier
    from {{ source('marts', 'customer_tiers') }} as t
    where t.month_start between {{ dbt.dateadd('month', -2, first_evaluated_month()) }}
        and {{ dbt.dateadd('month', 2, "cast('" ~ run_end_month() ~ "' as date)") }}
),

histories as (
    select
        now.customer_id,
        now.month_start,
        now.value_tier,
        now.plain_tier,
        before.value_tier as value_tier_1m_before,
        before.plain_tier as plain_tier_1m_before,
        earlier.value_tier as value_tier_2m_before,
        earlier.plain_tier as plain_tier_2m_before,
        case when o.months_observed >= {{ k }} then o.value_{{ k }}m end as realised_value
    from tiers as now
    left join tiers as before
        on
            before.customer_id = now.customer_id
            and before.month_start = {{ dbt.dateadd('month', -1, 'now.month_start') }}
    left join tiers as earlier
        on
            earlier.customer_id = now.customer_id
            and earlier.month_start = {{ dbt.dateadd('month', -2, 'now.month_start') }}
    left join {{ ref('int_tier_outcomes') }} as o
        on o.customer_id = now.customer_id and o.month_start = now.month_start
    where {{ in_stability_months('now.month_start') }}
),

by_month as (
    select
        month_start,
        count(*) as customers_tiered,
        count(*) filter (where value_tier_1m_before is not null) as customers_tiered_1m_before,
        count(*) filter (where value_tier_1m_before is not null and value_tier_2m_before is not null)
            as customers_tiered_2m_before,
        count(*) filter (where value_tier <> value_tier_1m_before) as published_tier_changes,
        count(*) filter (where plain_tier <> plain_tier_1m_before) as plain_tier_changes,
        count(*) filter (where value_tier = value_tier_2m_before and value_tier <> value_tier_1m_before)
            as published_flips,
        count(*) filter (where plain_tier = plain_tier_2m_before and plain_tier <> plain_tier_1m_before)
            as plain_flips,
        -- the plain cut is known for the month and the two before it wherever the tiers are
        count(plain_tier) = count(*)
        and count(plain_tier_1m_before) = count(value_tier_1m_before)
        and count(plain_tier_2m_before) = count(value_tier_2m_before) as plain_known,
        count(realised_value) = count(*) as window_passed,
        sum(realised_value) as realised_value,
        sum(realised_value) filter (where value_tier = 'high') as published_high_value,
        sum(realised_value) filter (where plain_tier = 'high') as plain_high_value
    from histories
    group by month_start
)

select
    month_start,
    customers_tiered,
    customers_tiered_1m_before,
    published_tier_changes,
    case when plain_known then plain_tier_changes end as plain_tier_changes,
    cast(round(published_tier_changes / nullif(customers_tiered_1m_before, 0), 4) as decimal(5, 4))
        as published_change_rate,
    case
        when plain_known
            then cast(round(plain_tier_changes / nullif(customers_tiered_1m_before, 0), 4) as decimal(5, 4))
    end as plain_change_rate,
    customers_tiered_2m_before,
    published_flips,
    case when plain_known then plain_flips end as plain_flips,
    cast(round(published_flips / nullif(customers_tiered_2m_before, 0), 4) as decimal(5, 4)) as published_flip_rate,
    case
        when plain_known then cast(round(plain_flips / nullif(customers_tiered_2m_before, 0), 4) as decimal(5, 4))
    end as plain_flip_rate,
    {{ k }} as outcome_months,
    case when window_passed then cast(realised_value as decimal(18, 2)) end as realised_value,
    case
        when window_passed
            then cast(round(coalesce(published_high_value, 0) / nullif(realised_value, 0), 4) as decimal(7, 4))
    end as published_high_capture,
    case
        when window_passed and plain_known
            then cast(round(coalesce(plain_high_value, 0) / nullif(realised_value, 0), 4) as decimal(7, 4))
    end as plain_high_capture
from by_month

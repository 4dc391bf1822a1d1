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

-- Each customer's tiers one and two calendar months before, from the rows one and two back in the
-- customer's month order (a customer untiered in between has no row there). A window, not the
-- tiers joined to themselves twice: at 1,000,000 customers x 36 months the two joins' hash tables
-- of the whole history ran out of DuckDB's 4 GB.
{%- set by_customer = "over (partition by customer_id order by month_start)" %}
{%- set month_1_before = dbt.dateadd('month', -1, 'now.month_start') %}
{%- set month_2_before = dbt.dateadd('month', -2, 'now.month_start') %}
earlier_rows as (
    select
        customer_id,
        month_start,
        value_tier,
        plain_tier,
        lag(month_start, 1) {{ by_customer }} as row_1_back_month,
        lag(value_tier, 1) {{ by_customer }} as row_1_back_value_tier,
        lag(plain_tier, 1) {{ by_customer }} as row_1_back_plain_tier,
        lag(month_start, 2) {{ by_customer }} as row_2_back_month,
        lag(value_tier, 2) {{ by_customer }} as row_2_back_value_tier,
        lag(plain_tier, 2) {{ by_customer }} as row_2_back_plain_tier
    from tiers
),

histories as (
    select
        now.customer_id,
        now.month_start,
        now.value_tier,
        now.plain_tier,
        case when now.row_1_back_month = {{ month_1_before }} then now.row_1_back_value_tier end
            as value_tier_1m_before,
        case when now.row_1_back_month = {{ month_1_before }} then now.row_1_back_plain_tier end
            as plain_tier_1m_before,
        case
            when now.row_1_back_month = {{ month_2_before }} then now.row_1_back_value_tier
            when now.row_2_back_month = {{ month_2_before }} then now.row_2_back_value_tier
        end as value_tier_2m_before,
        case
            when now.row_1_back_month = {{ month_2_before }} then now.row_1_back_plain_tier
            when now.row_2_back_month = {{ month_2_before }} then now.row_2_back_plain_tier
        end as plain_tier_2m_before,
        case when o.months_observed >= {{ k }} then o.value_{{ k }}m end as realised_value
    from earlier_rows as now
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

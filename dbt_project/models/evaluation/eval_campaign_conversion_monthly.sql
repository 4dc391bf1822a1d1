{{ incremental_by_month() }}
-- Campaign response and conversion by the tier customers held when the campaign went out: the
-- contacts sent in the month after a scored month, by that month's tier (breakdown 'tier') and by
-- tier, campaign and product offered (breakdown 'campaign'), once the main outcome window (var
-- outcome_months) after the scored month is processed. Contacts of customers the scored month had
-- not tiered yet (they joined after it) count under tier 'untiered'. Control rows of an A/B
-- campaign (selected, not contacted) are not contacts: eval_campaign_ab_monthly compares them.
-- Attributed value (last touch): what the converted customers brought over the outcome window, in
-- the scored month's value measure, split evenly over a customer's conversions in the month. It is
-- an upper bound on what the campaign caused; the A/B evaluation measures the uplift itself.
{% set k = var('outcome_months') %}

with months as (
    select * from {{ ref('int_evaluation_months') }}
),

contacts as (
    select
        month_start,
        month_index,
        uses_profit,
        contact_id,
        customer_id,
        campaign_id,
        product_offered,
        cost,
        responded_at is not null as responded,
        converted_at is not null as converted,
        {{ hours_between_in_minutes('sent_at', 'responded_at') }} as response_hours,
        value_tier
    from {{ ref('int_campaign_contacts_by_tier') }}
    where {{ in_evaluated_months('month_start') }}
      and months_after >= {{ k }}
      and test_group = 'treatment'
),

converters as (
    select month_start, month_index, uses_profit, customer_id, count(*) as conversions
    from contacts
    where converted
    group by month_start, month_index, uses_profit, customer_id
),

converter_value as (
    select
        v.month_start,
        v.customer_id,
        -- A fixed decimal, so that the sums of a campaign's attributed value below are exact: summed as
        -- doubles they depend on the order parallel threads add them in, and the ROI's last digit did.
        cast(
            sum(case when v.uses_profit then x.profit_contribution else x.transaction_amount end) / v.conversions
            as decimal(38, 10)
        ) as value_per_conversion
    from converters as v
    inner join {{ ref('int_transactions_by_customer_month') }} as x
        on x.customer_id = v.customer_id
    inner join months as m
        on m.month_start = x.month_start
        and m.month_index between v.month_index + 1 and v.month_index + {{ k }}
    group by v.month_start, v.customer_id, v.conversions
),

attributed as (
    select c.*, case when c.converted then coalesce(v.value_per_conversion, 0) else 0 end as attributed_value
    from contacts as c
    left join converter_value as v
        on v.month_start = c.month_start and v.customer_id = c.customer_id
)

select
    month_start,
    value_tier,
    case when grouping(campaign_id) = 1 then 'tier' else 'campaign' end as breakdown,
    campaign_id,
    product_offered,
    {{ k }} as outcome_months,
    count(*) as contacts,
    count(*) filter (where responded) as responses,
    count(*) filter (where converted) as conversions,
    cast(round(avg(case when responded then 1.0 else 0.0 end), 4) as decimal(5, 4)) as response_rate,
    cast(round(avg(case when converted then 1.0 else 0.0 end), 4) as decimal(5, 4)) as conversion_rate,
    cast(round(median(response_hours), 2) as decimal(18, 2)) as median_response_hours,
    cast(sum(cost) as decimal(18, 2)) as cost,
    cast(round(sum(attributed_value), 2) as decimal(18, 2)) as attributed_value,
    cast(round(sum(attributed_value) / nullif(sum(cost), 0), 2) as decimal(18, 2)) as roi
from attributed
group by grouping sets ((month_start, value_tier), (month_start, value_tier, campaign_id, product_offered))

select
    contact_id,
    campaign_id,
    customer_id,
    cast(_delivery_month as date) as month_start,
    channel,
    product_offered,
    cast(sent_at as timestamp) as sent_at,
    cast(responded_at as timestamp) as responded_at,
    cast(converted_at as timestamp) as converted_at,
    cast(coalesce(cost, 0) as decimal(18, 2)) as cost,
    -- Without an A/B design every row is a contact sent.
    coalesce(test_group, 'treatment') as test_group,
    -- The group as delivered: in an A/B campaign a row that names no group is in neither, and the
    -- A/B evaluation leaves it out of both (and counts it) rather than guess that it was contacted.
    test_group as ab_group
from {{ source('raw', 'campaign_contacts') }}

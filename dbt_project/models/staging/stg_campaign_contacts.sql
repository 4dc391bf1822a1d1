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
    coalesce(test_group, 'treatment') as test_group
from {{ source('raw', 'campaign_contacts') }}

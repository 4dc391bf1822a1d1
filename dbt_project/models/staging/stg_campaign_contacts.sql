select
    contact_id,
    campaign_id,
    customer_id,
    cast(_delivery_month as date) as month_start,
    channel,
    product_offered,
    sent_at,
    responded_at,
    converted_at,
    cast(coalesce(cost, 0) as decimal(18, 2)) as cost,
    -- Without an A/B design every row is a contact sent.
    coalesce(test_group, 'treatment') as test_group
from {{ source('raw', 'campaign_contacts') }}

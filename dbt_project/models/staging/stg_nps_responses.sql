select
    response_id,
    customer_id,
    cast(_delivery_month as date) as month_start,
    cast(answered_at as timestamp) as answered_at,
    score
from {{ source('raw', 'nps_responses') }}

select
    session_id,
    customer_id,
    cast(_delivery_month as date) as month_start,
    cast(started_at as timestamp) as started_at,
    channel,
    duration_s,
    features_used
from {{ source('raw', 'digital_sessions') }}

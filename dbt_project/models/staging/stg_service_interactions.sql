select
    interaction_id,
    customer_id,
    cast(_delivery_month as date) as month_start,
    cast(opened_at as timestamp) as opened_at,
    cast(resolved_at as timestamp) as resolved_at,
    kind,
    satisfaction
from {{ source('raw', 'service_interactions') }}

select
    interaction_id,
    customer_id,
    cast(_delivery_month as date) as month_start,
    opened_at,
    resolved_at,
    kind,
    satisfaction
from {{ source('raw', 'service_interactions') }}

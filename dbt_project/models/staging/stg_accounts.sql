{{ view_read_by_python('delivery_month') }}
select
    account_id,
    customer_id,
    cast(_delivery_month as date) as delivery_month,
    product_type,
    cast(opened_at as date) as opened_at,
    cast(closed_at as date) as closed_at
from {{ source('raw', 'accounts') }}
{% if is_incremental() %}where {{ in_month_window('cast(_delivery_month as date)') }}{% endif %}

{{ incremental_by_month() }}
-- Every customer in every processed month from the month of their first delivery on, with the
-- customer record as it stood then (latest version delivered on or before the month).
-- depends_on: {{ ref('int_months') }}
with versions as (
    {{ versions_as_of_month(ref('stg_customers'), 'customer_id') }}
)

select
    customer_id,
    month_start,
    month_end,
    delivery_month as record_delivery_month,
    opened_at,
    closed_at,
    city,
    income_band,
    risk_profile
from versions

-- One row per customer: the latest delivered record, personal data as keyed hashes only.
with ranked as (
    select
        *,
        row_number() over (partition by customer_id order by delivery_month desc) as version_rank,
        min(delivery_month) over (partition by customer_id) as first_delivery_month
    from {{ ref('stg_customers') }}
)

select
    customer_id,
    opened_at,
    birth_year,
    city,
    income_band,
    risk_profile,
    full_name_hash,
    national_id_hash,
    phone_hash,
    email_hash,
    first_delivery_month,
    delivery_month as last_delivery_month
from ranked
where version_rank = 1

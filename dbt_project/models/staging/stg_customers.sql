{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='delivery_month',
    on_schema_change='append_new_columns'
) }}
{#- A table, not a view: a view's SQL would carry the hashing key into the warehouse.
    Incremental by delivery month, so a run hashes only its own months' deliveries. A contract
    column added later (closed_at) is appended to an existing table. -#}
select
    customer_id,
    cast(_delivery_month as date) as delivery_month,
    cast(opened_at as date) as opened_at,
    cast(closed_at as date) as closed_at,
    extract(year from birth_date) as birth_year,
    city,
    income_band,
    risk_profile,
    {{ hash_pii('full_name') }} as full_name_hash,
    {{ hash_pii('national_id') }} as national_id_hash,
    {{ hash_pii('phone') }} as phone_hash,
    {{ hash_pii('email') }} as email_hash
from {{ source('raw', 'customers') }}
where {{ in_month_window('cast(_delivery_month as date)') }}

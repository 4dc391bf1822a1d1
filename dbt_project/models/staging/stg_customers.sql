{{ incremental_by_month('delivery_month', on_schema_change='append_new_columns') }}
{#- Personal data arrives hashed: ingestion stores only the keyed hashes (HMAC-SHA256, valuetier/pii.py),
    so neither the names nor the key ever reach dbt. Incremental by delivery month; a contract
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
    full_name_hash,
    national_id_hash,
    phone_hash,
    email_hash
from {{ source('raw', 'customers') }}
where {{ in_month_window('cast(_delivery_month as date)') }}

select
    account_id,
    cast(_delivery_month as date) as month_start,
    cast(month_end as date) as month_end,
    cast(balance as decimal(18, 2)) as balance
from {{ source('raw', 'balances') }}

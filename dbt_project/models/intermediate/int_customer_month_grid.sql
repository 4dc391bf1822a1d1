-- Every customer in every processed month from the month of their first delivery on, with the
-- customer record as it stood then (latest version delivered on or before the month).
with versions as (
    select
        c.*,
        m.month_start,
        m.month_end,
        row_number() over (
            partition by c.customer_id, m.month_start order by c.delivery_month desc
        ) as version_rank
    from {{ ref('stg_customers') }} as c
    inner join {{ ref('int_months') }} as m
        on c.delivery_month <= m.month_start
)

select
    customer_id,
    month_start,
    month_end,
    delivery_month as record_delivery_month,
    opened_at,
    city,
    income_band,
    risk_profile
from versions
where version_rank = 1

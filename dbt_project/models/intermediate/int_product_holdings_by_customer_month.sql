{{ incremental_by_month() }}
-- Product holdings per customer at each month end, point in time: each account as last delivered
-- on or before the month, counted when open at month end; AUM from that month's balances.
-- depends_on: {{ ref('int_months') }}
with account_versions as (
    {{ versions_as_of_month(ref('stg_accounts'), 'account_id') }}
),

open_at_month_end as (
    select *
    from account_versions
    where opened_at <= month_end
      and (closed_at is null or closed_at > month_end)
)

select
    o.customer_id,
    o.month_start,
    count(*) as open_accounts,
    count(distinct o.product_type) as product_count,
    {%- for product in ['savings', 'term_deposit', 'fund', 'insurance', 'credit_card', 'loan', 'wealth'] %}
    coalesce(bool_or(o.product_type = '{{ product }}'), false) as holds_{{ product }},
    {%- endfor %}
    cast(coalesce(sum(case when b.balance > 0 then b.balance end), 0) as decimal(18, 2)) as assets_under_management
from open_at_month_end as o
left join {{ ref('stg_balances') }} as b
    on b.account_id = o.account_id
   and b.month_start = o.month_start
group by o.customer_id, o.month_start

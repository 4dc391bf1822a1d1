-- One row per campaign contact the customer responded to, dated by the month of the response.
select
    contact_id,
    customer_id,
    campaign_id,
    cast({{ dbt.date_trunc('month', 'responded_at') }} as date) as response_month,
    responded_at,
    {{ hours_between('sent_at', 'responded_at') }} as response_hours,
    converted_at is not null as converted
from {{ ref('stg_campaign_contacts') }}
where responded_at is not null
  and responded_at >= sent_at

{{ incremental_by_month() }}
-- App and web logins per customer and month.
select
    customer_id,
    month_start,
    count(*) as logins,
    count(*) filter (where channel = 'app') as app_logins,
    coalesce(sum(duration_s), 0) as session_seconds,
    max(features_used) as most_features_in_a_session,
    max(started_at) as last_login_at
from {{ ref('stg_digital_sessions') }}
where {{ in_month_window('month_start') }}
group by customer_id, month_start

{{ incremental_by_month() }}
-- Retention and churn after each outcome window (var outcome_windows_months) of every scored month,
-- by tier (breakdown 'tier', segment null) and by tier and action segment (breakdown 'segment').
-- Retained: still live at the window's end and transacted within it. Churned: no longer live.
-- A window's figures stay null until its last month is processed.
{% set windows = var('outcome_windows_months') %}

select
    month_start,
    value_tier,
    case when grouping(segment) = 1 then 'tier' else 'segment' end as breakdown,
    segment,
    count(*) as customers,
    {%- for k in windows %}
    case when min(months_observed) >= {{ k }} then count(*) filter (where live_{{ k }}m and transacted_{{ k }}m) end
        as retained_{{ k }}m,
    case when min(months_observed) >= {{ k }} then count(*) filter (where not live_{{ k }}m) end as churned_{{ k }}m,
    case when min(months_observed) >= {{ k }}
        then cast(round(avg(case when live_{{ k }}m and transacted_{{ k }}m then 1.0 else 0.0 end), 4) as decimal(5, 4))
    end as retention_rate_{{ k }}m,
    case when min(months_observed) >= {{ k }}
        then cast(round(avg(case when live_{{ k }}m then 0.0 else 1.0 end), 4) as decimal(5, 4))
    end as churn_rate_{{ k }}m{{ "," if not loop.last }}
    {%- endfor %}
from {{ ref('int_tier_outcomes') }}
where {{ in_evaluated_months('month_start') }}
group by grouping sets ((month_start, value_tier), (month_start, value_tier, segment))

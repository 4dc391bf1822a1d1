{#- Point in time for entity sources: for every processed month of the run's window, the version of
    each record (key) that was delivered last on or before that month. Later deliveries are never read.
    Each version is valid from its delivery month until the key's next delivery (superseded_month,
    null while it is the latest), so the months join a version's validity range: the window runs over
    the versions, not over every version paired with every later month. -#}
{% macro versions_as_of_month(relation, key) %}
    select
        v.*,
        m.month_start,
        m.month_end
    from (
        select *, lead(delivery_month) over (partition by {{ key }} order by delivery_month) as superseded_month
        from {{ relation }}
    ) as v
    inner join {{ ref('int_months') }} as m
        on v.delivery_month <= m.month_start
       and (v.superseded_month is null or m.month_start < v.superseded_month)
    where {{ in_month_window('m.month_start') }}
{% endmacro %}

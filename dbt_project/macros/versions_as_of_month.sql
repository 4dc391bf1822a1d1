{#- Point in time for entity sources: for every processed month of the run's window, the version of
    each record (key) that was delivered last on or before that month. Later deliveries are never read. -#}
{% macro versions_as_of_month(relation, key) %}
    select
        v.*,
        m.month_start,
        m.month_end
    from {{ relation }} as v
    inner join {{ ref('int_months') }} as m
        on v.delivery_month <= m.month_start
    where {{ in_month_window('m.month_start') }}
    qualify row_number() over (partition by v.{{ key }}, m.month_start order by v.delivery_month desc) = 1
{% endmacro %}

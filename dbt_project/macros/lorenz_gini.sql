{#- The Gini coefficient of `actual` ordered by `score` (highest first) within each `partition_by`
    group of `relation`: twice the area between the Lorenz curve of cumulative actual share against
    cumulative customer share and the diagonal. Tied scores form one straight segment (trapezoids),
    so the result does not depend on how ties are ordered. Divided by the same with `actual` as the
    score, it is the normalized Gini (1: perfect ranking, 0: no better than random). -#}
{% macro lorenz_gini(relation, partition_by, score, actual) -%}
    {%- set keys = partition_by | join(', ') -%}
    select {{ keys }}, 2 * sum((x - previous_x) * (y + previous_y) / 2) - 1 as gini
    from (
        select
            {{ keys }},
            x,
            y,
            coalesce(lag(x) over (partition by {{ keys }} order by score desc), 0) as previous_x,
            coalesce(lag(y) over (partition by {{ keys }} order by score desc), 0) as previous_y
        from (
            select
                {{ keys }},
                score,
                sum(customers) over cumulative / sum(customers) over (partition by {{ keys }}) as x,
                sum(actual) over cumulative / nullif(sum(actual) over (partition by {{ keys }}), 0) as y
            from (
                select {{ keys }}, {{ score }} as score, count(*) as customers, sum({{ actual }}) as actual
                from {{ relation }}
                group by {{ keys }}, {{ score }}
            ) as tied
            window cumulative as (partition by {{ keys }} order by score desc rows between unbounded preceding and current row)
        ) as curve
    ) as segments
    group by {{ keys }}
{%- endmacro %}

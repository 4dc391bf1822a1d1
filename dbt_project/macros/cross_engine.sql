{#- SQL that DuckDB and Spark spell differently, one macro each (adapter.dispatch); everything else
    in the project is written in the form both engines read (../shared/PORTABILITY.md lists them). -#}

{#- The value of `value_column` on the row with the smallest `order_column` (DuckDB arg_min, Spark min_by). -#}
{% macro arg_min(value_column, order_column) -%}
    {{ return(adapter.dispatch('arg_min', 'valuetier')(value_column, order_column)) }}
{%- endmacro %}

{% macro default__arg_min(value_column, order_column) -%}
    arg_min({{ value_column }}, {{ order_column }})
{%- endmacro %}

{% macro spark__arg_min(value_column, order_column) -%}
    min_by({{ value_column }}, {{ order_column }})
{%- endmacro %}

{#- The value of `value_column` on the row with the largest `order_column` (DuckDB arg_max, Spark max_by). -#}
{% macro arg_max(value_column, order_column) -%}
    {{ return(adapter.dispatch('arg_max', 'valuetier')(value_column, order_column)) }}
{%- endmacro %}

{% macro default__arg_max(value_column, order_column) -%}
    arg_max({{ value_column }}, {{ order_column }})
{%- endmacro %}

{% macro spark__arg_max(value_column, order_column) -%}
    max_by({{ value_column }}, {{ order_column }})
{%- endmacro %}

{#- The last non-null value of `expression` in the window that follows (`last_value ... ignore nulls`). -#}
{% macro last_non_null(expression) -%}
    {{ return(adapter.dispatch('last_non_null', 'valuetier')(expression)) }}
{%- endmacro %}

{% macro default__last_non_null(expression) -%}
    last_value({{ expression }} ignore nulls)
{%- endmacro %}

{% macro spark__last_non_null(expression) -%}
    last_value({{ expression }}, true)
{%- endmacro %}

{#- The quartiles of an aggregate's values as a three-item list (exact, linearly interpolated:
    DuckDB quantile_cont, Spark percentile), read back with quartile(list, 1..3). -#}
{% macro quartiles(expression) -%}
    {{ return(adapter.dispatch('quartiles', 'valuetier')(expression)) }}
{%- endmacro %}

{% macro default__quartiles(expression) -%}
    quantile_cont({{ expression }}, [0.25, 0.5, 0.75])
{%- endmacro %}

{% macro spark__quartiles(expression) -%}
    percentile({{ expression }}, array(0.25, 0.5, 0.75))
{%- endmacro %}

{#- Item n (1-based) of a list: DuckDB lists index from 1, Spark's [] from 0 (element_at from 1). -#}
{% macro list_item(list_expression, n) -%}
    {{ return(adapter.dispatch('list_item', 'valuetier')(list_expression, n)) }}
{%- endmacro %}

{% macro default__list_item(list_expression, n) -%}
    {{ list_expression }}[{{ n }}]
{%- endmacro %}

{% macro spark__list_item(list_expression, n) -%}
    element_at({{ list_expression }}, {{ n }})
{%- endmacro %}

{#- Calendar months from `first` to `second`: month boundaries crossed, as DuckDB's datediff counts
    them. Plain arithmetic, the same SQL on both engines, where dbt.datediff on Spark rebuilds it from
    months_between and day-of-month corrections. -#}
{% macro months_between_dates(first, second) -%}
    ((extract(year from {{ second }}) - extract(year from {{ first }})) * 12
        + extract(month from {{ second }}) - extract(month from {{ first }}))
{%- endmacro %}

{#- The values of an aggregate (or window) as a list: DuckDB list, Spark collect_list. -#}
{% macro list_of(expression) -%}
    {{ return(adapter.dispatch('list_of', 'valuetier')(expression)) }}
{%- endmacro %}

{% macro default__list_of(expression) -%}
    list({{ expression }})
{%- endmacro %}

{% macro spark__list_of(expression) -%}
    collect_list({{ expression }})
{%- endmacro %}

{#- The number of items of a list (0 for an empty list). -#}
{% macro list_length(list_expression) -%}
    {{ return(adapter.dispatch('list_length', 'valuetier')(list_expression)) }}
{%- endmacro %}

{% macro default__list_length(list_expression) -%}
    len({{ list_expression }})
{%- endmacro %}

{% macro spark__list_length(list_expression) -%}
    size({{ list_expression }})
{%- endmacro %}

{#- quartiles() of the items of a list, null for an empty list. Spark has no aggregate over an
    array: sort it and interpolate between the two items around (n - 1) * p, as quantile_cont does. -#}
{% macro list_quartiles(list_expression) -%}
    {{ return(adapter.dispatch('list_quartiles', 'valuetier')(list_expression)) }}
{%- endmacro %}

{% macro default__list_quartiles(list_expression) -%}
    list_aggr({{ list_expression }}, 'quantile_cont', [0.25, 0.5, 0.75])
{%- endmacro %}

{% macro spark__list_quartiles(list_expression) -%}
    {%- set sorted = "sort_array(" ~ list_expression ~ ")" -%}
    {%- set n = "size(" ~ list_expression ~ ")" -%}
    {%- set below = "element_at(" ~ sorted ~ ", cast(floor((" ~ n ~ " - 1) * p) as int) + 1)" -%}
    {%- set above = "element_at(" ~ sorted ~ ", cast(ceil((" ~ n ~ " - 1) * p) as int) + 1)" -%}
    case when {{ n }} > 0 then transform(array(0.25D, 0.5D, 0.75D), p ->
        {{ below }} + (({{ n }} - 1) * p - floor(({{ n }} - 1) * p)) * ({{ above }} - {{ below }}))
    end
{%- endmacro %}

{#- Hours from `first` to `second` to two decimals. Rounded as whole hundredths of an hour
    (seconds / 36): a half-way value is then exactly .5 on both engines and rounds up on both, where
    rounding seconds / 3600.0 to 2 places rounds a half-way value by its binary form on DuckDB
    (double) and exactly on Spark (decimal). -#}
{% macro hours_between(first, second) -%}
    round({{ dbt.datediff(first, second, 'second') }} / 36) / 100
{%- endmacro %}

{#- Hours from `first` to `second` counted in whole minutes as DuckDB's date_diff('minute') counts
    them (the minute boundaries crossed), in double precision on both engines: dbt-spark's minute
    datediff rounds the seconds up instead, and a decimal 60.0 divides exactly on Spark. -#}
{% macro hours_between_in_minutes(first, second) -%}
    cast({{ dbt.datediff(dbt.date_trunc('minute', first), dbt.date_trunc('minute', second), 'second') }} as double) / 3600
{%- endmacro %}

{#- numerator / denominator as decimal(precision, scale), rounded half up, with the same digits on
    every engine: in double precision (IEEE division and multiplication give the same bits on
    DuckDB and Spark) and rounded by floor(x + 0.5), not by the cast. A plain decimal division
    differs in its last place: DuckDB divides decimals in double precision and its cast rounds
    that, Spark divides them exactly, so 8167.95 / 14 = 583.425 became 583.42 on one and 583.43 on
    the other, and a tree split between those two values tiered the customer differently. The
    caller guards a zero denominator. -#}
{% macro rounded_ratio(numerator, denominator, precision, scale) -%}
    cast(floor(cast({{ numerator }} as double) / cast({{ denominator }} as double) * {{ 10 ** scale }} + 0.5)
        / {{ 10 ** scale }} as decimal({{ precision }}, {{ scale }}))
{%- endmacro %}

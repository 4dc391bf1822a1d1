{#- Config shared by every monthly model: a run replaces exactly the months of its window. -#}
{% macro incremental_by_month() -%}
    {{ config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='month_start',
        on_schema_change='fail'
    ) }}
{%- endmacro %}

{#- The first month a trailing window of n months ending at the run's first month reaches back to. -#}
{% macro window_history_start(months_back) -%}
    {{ dbt.dateadd('month', -months_back, "cast('" ~ window_start() ~ "' as date)") }}
{%- endmacro %}

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

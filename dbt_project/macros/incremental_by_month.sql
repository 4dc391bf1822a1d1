{#- Config shared by every monthly model: a run replaces exactly the months of its window.
    DuckDB deletes the window's months and inserts them again (delete+insert on the month key);
    Spark's Parquet tables cannot delete, so there the table is partitioned by the month and a run
    overwrites the partitions it writes (insert_overwrite, dynamic partitions). Same result. -#}
{% macro incremental_by_month(month_column='month_start', on_schema_change='fail') -%}
    {{ return(adapter.dispatch('incremental_by_month', 'valuetier')(month_column, on_schema_change)) }}
{%- endmacro %}

{% macro default__incremental_by_month(month_column, on_schema_change) -%}
    {{ config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=month_column,
        on_schema_change=on_schema_change
    ) }}
{%- endmacro %}

{% macro spark__incremental_by_month(month_column, on_schema_change) -%}
    {{ config(
        materialized='incremental',
        incremental_strategy='insert_overwrite',
        partition_by=[month_column],
        file_format='parquet',
        on_schema_change=on_schema_change
    ) }}
{%- endmacro %}

{#- The first month a trailing window of n months ending at the run's first month reaches back to. -#}
{% macro window_history_start(months_back) -%}
    {{ dbt.dateadd('month', -months_back, "cast('" ~ window_start() ~ "' as date)") }}
{%- endmacro %}

{#- A model Python steps read as well as dbt (a quality suite's table, the anomaly counts): a view on
    DuckDB, where Python opens the same file; on an engine Python reads only through files
    (valuetier/exchange.py), a view would be visible to that engine alone, so it is stored there,
    incrementally by month. Its SQL filters on the window only when incremental, which a view never is. -#}
{% macro view_read_by_python(month_column='month_start') -%}
    {{ return(adapter.dispatch('view_read_by_python', 'valuetier')(month_column)) }}
{%- endmacro %}

{% macro default__view_read_by_python(month_column) -%}
    {{ config(materialized='view') }}
{%- endmacro %}

{% macro spark__view_read_by_python(month_column) -%}
    {{ incremental_by_month(month_column) }}
{%- endmacro %}

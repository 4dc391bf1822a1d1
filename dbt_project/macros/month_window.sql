{#- The month window a run (re)builds, as first-of-month dates: VALUETIER_START_MONTH and
    VALUETIER_END_MONTH, which Dagster sets from the run's partition range (orchestration/dbt.py);
    unset, every month. Environment variables, not --vars: dbt re-parses the whole project whenever
    --vars change (every month), but after a changed environment variable only the files that read it. -#}
{% macro run_start_month() -%}
    {{- return(env_var("VALUETIER_START_MONTH", "1900-01-01")) -}}
{%- endmacro %}

{% macro run_end_month() -%}
    {{- return(env_var("VALUETIER_END_MONTH", "2999-12-01")) -}}
{%- endmacro %}

{#- True for months inside the run's window as set, on any run (a test's rows, say). -#}
{% macro in_run_months(column) -%}
    {{ column }} between cast('{{ run_start_month() }}' as date) and cast('{{ run_end_month() }}' as date)
{%- endmacro %}

{#- An incremental run of one month: the models that can, take a per-customer aggregate path instead
    of windows over many months. -#}
{% macro is_one_month_run() -%}
    {{- return(is_incremental() and run_start_month() == run_end_month()) -}}
{%- endmacro %}

{#- The first month a run writes: the window's first on incremental runs; on a model's first
    build (or --full-refresh) every month, so a table never starts with holes before its window. -#}
{% macro window_start() -%}
    {%- if is_incremental() -%}{{ run_start_month() }}{%- else -%}1900-01-01{%- endif -%}
{%- endmacro %}

{#- True for months inside the run's window (first-of-month dates). -#}
{% macro in_month_window(column) -%}
    {{ column }} between cast('{{ window_start() }}' as date) and cast('{{ run_end_month() }}' as date)
{%- endmacro %}

{#- An aggregate over a customer's trailing processed months: the rows from `from_back` months before
    the row's month (none: every earlier month) to `to_back` months before it (0: the month itself).
    Over many months it is a window over the customer's rows; for a one-month run it is a plain
    aggregate grouped by customer, over rows that carry `months_back` (0 for the run's month), so a
    month's cost is one pass over its history instead of a window sort. Both give the same values. -#}
{% macro trailing(aggregate, expression, from_back=none, to_back=0, one_month=false) -%}
    {%- if one_month -%}
        {%- set from_condition = "" if from_back is none else "months_back <= " ~ from_back -%}
        {%- set to_condition = "" if to_back == 0 else "months_back >= " ~ to_back -%}
        {%- set conditions = [from_condition, to_condition] | reject("equalto", "") | list -%}
        {%- if conditions -%}
            {{ aggregate }}(case when {{ conditions | join(" and ") }} then {{ expression }} end)
        {%- else -%}
            {{ aggregate }}({{ expression }})
        {%- endif -%}
    {%- else -%}
        {{ aggregate }}({{ expression }}) over (
            partition by customer_id order by month_start rows between
            {{ "unbounded" if from_back is none else from_back }} preceding and
            {{ "current row" if to_back == 0 else to_back ~ " preceding" }})
    {%- endif -%}
{%- endmacro %}

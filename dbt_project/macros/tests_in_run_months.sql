{#- dbt's data tests read only the run's months (run_start_month..run_end_month, macros/month_window.sql)
    of the table they test, where it has a month column: a monthly run's tests cost the month, not the
    history. A full build (no window set: every month) tests every row. A test's own `where` config still applies.
    Overrides dbt's get_where_subquery, which wraps the tested relation for every generic test. -#}
{% macro get_where_subquery(relation) -%}
    {%- set conditions = [] -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}{%- do conditions.append('(' ~ where ~ ')') -%}{%- endif -%}
    {%- set month_column = run_month_column(relation) -%}
    {%- if month_column -%}
        {%- do conditions.append(in_run_months(month_column)) -%}
    {%- endif -%}
    {%- if conditions -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ conditions | join(' and ') ~ ') dbt_subquery') -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}

{#- The month column a run's window applies to (none for a table without one). -#}
{% macro run_month_column(relation) -%}
    {%- if not execute -%}{%- do return(none) -%}{%- endif -%}
    {%- set columns = adapter.get_columns_in_relation(relation) | map(attribute='name') | map('lower') | list -%}
    {%- for candidate in ['month_start', 'delivery_month', '_delivery_month'] -%}
        {%- if candidate in columns -%}{%- do return(candidate) -%}{%- endif -%}
    {%- endfor -%}
    {%- do return(none) -%}
{%- endmacro %}

{#- The first month a run writes: the start_month var on incremental runs; on a model's first
    build (or --full-refresh) every month, so a table never starts with holes before its window. -#}
{% macro window_start() -%}
    {%- if is_incremental() -%}{{ var("start_month") }}{%- else -%}1900-01-01{%- endif -%}
{%- endmacro %}

{#- True for months inside the run's window (first-of-month dates). -#}
{% macro in_month_window(column) -%}
    {{ column }} between cast('{{ window_start() }}' as date) and cast('{{ var("end_month") }}' as date)
{%- endmacro %}

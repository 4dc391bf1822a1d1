{#- True for months inside the run's window (vars start_month / end_month, first-of-month dates). -#}
{% macro in_month_window(column) -%}
    {{ column }} between cast('{{ var("start_month") }}' as date) and cast('{{ var("end_month") }}' as date)
{%- endmacro %}

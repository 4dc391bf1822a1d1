{#- The value measure (var value_measure, one home with Python's valuetier/value_measure.py): true
    where tiers rank profit contribution for the month in `month_column`, false where they rank
    transaction amount (revenue). auto: profit once the deliveries up to that month carry margins
    that are not all zero. -#}
{% macro uses_profit_measure(month_column) -%}
    {%- set measure = var('value_measure') -%}
    {%- if measure == 'profit' -%}
        true
    {%- elif measure == 'revenue' -%}
        false
    {%- elif measure == 'auto' -%}
        -- The first month with a margin, found once (uncorrelated): a correlated lookup per month
        -- read the transactions once per month, a cost growing with the square of the history.
        coalesce({{ month_column }} >= (
            select min(margins.month_start) from {{ ref('int_transactions_by_customer_month') }} as margins
            where margins.profit_contribution <> 0
        ), false)
    {%- else -%}
        {{ exceptions.raise_compiler_error(
            "var value_measure must be profit, revenue or auto, not '" ~ measure ~ "'"
        ) }}
    {%- endif -%}
{%- endmacro %}

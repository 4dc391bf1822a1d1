{#- The longest span of months after a scored month that the evaluation reads: the longest
    outcome window (var outcome_windows_months) or the label horizon, for the backtest. -#}
{% macro longest_outcome_window() -%}
    {{- return((var('outcome_windows_months') + [var('label_horizon_months')]) | max) -}}
{%- endmacro %}

{#- The first scored month an evaluation run rewrites: a run of months S..E rescored S..E and
    extended the outcome windows of the months up to the longest window before S. -#}
{% macro first_evaluated_month() -%}
    {{ dbt.dateadd('month', -(longest_outcome_window() | int), "cast('" ~ window_start() ~ "' as date)") }}
{%- endmacro %}

{#- True for the months whose tier moves a run rewrites: the run's months, and the month after its
    last, whose 'from' side the run may have rescored. -#}
{% macro in_moved_months(column) -%}
    {{ column }} between cast('{{ window_start() }}' as date)
        and {{ dbt.dateadd('month', 1, "cast('" ~ run_end_month() ~ "' as date)") }}
{%- endmacro %}

{#- True for the scored months an evaluation run rewrites. With as_dates, the first month is cast
    back to a date (dbt's dateadd gives a timestamp on DuckDB, and a DATE column compared with it is
    cast row by row): the filter then reaches the scans below a reader's joins. The readers of the
    view int_backtest_scores need it: their select took 3.9 s at 1,000,000 x 36, 0.37 s with it, the
    same rows. Not the default: int_tier_outcomes, given dates, plans its joins on the month instead
    of range-joining on the month index and took twice as long (bench/RESULTS.md, eighth session). -#}
{% macro in_evaluated_months(column, as_dates=false) -%}
    {%- set first = "cast(" ~ first_evaluated_month() ~ " as date)" if as_dates else first_evaluated_month() -%}
    {{ column }} between {{ first }} and cast('{{ run_end_month() }}' as date)
{%- endmacro %}

{#- True for the months an evaluation run reads the outcomes of: those after the first scored month
    it rewrites, up to the longest window after its last. It follows from the join to the scored
    months; said to the scan, it skips the row groups of the other months (a month's run then reads
    the same rows after 12 months of history as after 36). -#}
{% macro in_outcome_months(column) -%}
    {{ column }} > {{ first_evaluated_month() }}
        and {{ column }} <= {{ dbt.dateadd('month', longest_outcome_window() | int, "cast('" ~ run_end_month() ~ "' as date)") }}
{%- endmacro %}

{#- True for the months whose tier stability a run rewrites: those whose outcome window it extended
    (in_evaluated_months), and the two months after its last, whose changes and flips look back
    to the months it rescored. -#}
{% macro in_stability_months(column) -%}
    {{ column }} between {{ first_evaluated_month() }}
        and {{ dbt.dateadd('month', 2, "cast('" ~ run_end_month() ~ "' as date)") }}
{%- endmacro %}

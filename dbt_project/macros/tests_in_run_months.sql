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

{#- The month column a run's window applies to (none for a table without one). Taken from the
    columns the tested model or source documents in YAML (the manifest) when they name one: asking the
    database is a metadata query per test, a third of a small bank's test time. Otherwise the database
    is asked, so a column left undocumented still narrows the test (tests/test_pipeline.py holds the
    two answers equal for every tested table). -#}
{% macro run_month_column(relation) -%}
    {%- if not execute -%}{%- do return(none) -%}{%- endif -%}
    {%- set documented = month_column_among(documented_columns(relation) or []) -%}
    {%- if documented -%}{%- do return(documented) -%}{%- endif -%}
    {%- set columns = adapter.get_columns_in_relation(relation) | map(attribute='name') | map('lower') | list -%}
    {%- do return(month_column_among(columns)) -%}
{%- endmacro %}

{% macro month_column_among(columns) -%}
    {%- for candidate in ['month_start', 'delivery_month', '_delivery_month'] -%}
        {%- if candidate in columns -%}{%- do return(candidate) -%}{%- endif -%}
    {%- endfor -%}
    {%- do return(none) -%}
{%- endmacro %}

{#- The lower-cased documented columns of the model or source a test reads as `relation` (one of the
    test's dependencies), or none when it is not among them or documents no column. -#}
{% macro documented_columns(relation) -%}
    {%- for unique_id in model.depends_on.nodes -%}
        {%- set node = graph.nodes.get(unique_id) or graph.sources.get(unique_id) -%}
        {%- if node and node.columns -%}
            {%- set identifier = node.identifier if node.resource_type == 'source' else node.alias -%}
            {%- set same_schema = node.schema | lower == relation.schema | lower -%}
            {%- if same_schema and identifier | lower == relation.identifier | lower -%}
                {%- do return(node.columns.keys() | map('lower') | list) -%}
            {%- endif -%}
        {%- endif -%}
    {%- endfor -%}
    {%- do return(none) -%}
{%- endmacro %}

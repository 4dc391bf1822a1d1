{#- The tables Python steps write (dbt's sources: raw deliveries, quarantine, published tiers) as
    the engine reads them. On DuckDB they are in the warehouse file already. On Spark each is
    Parquet under VALUETIER_EXCHANGE_DIR/<schema>/<table>/ (valuetier/exchange.py writes them) and
    is registered again before every run, so a new month's files or columns are seen. Runs as
    on-run-start (dbt_project.yml). -#}
{% macro register_exchange_tables() -%}
    {{ return(adapter.dispatch('register_exchange_tables', 'valuetier')()) }}
{%- endmacro %}

{% macro default__register_exchange_tables() -%}
{%- endmacro %}

{% macro spark__register_exchange_tables() -%}
    {%- if execute -%}
        {%- set root = env_var('VALUETIER_EXCHANGE_DIR', '../data/exchange') -%}
        {%- for source in graph.sources.values() | sort(attribute='unique_id') -%}
            {%- set relation = source.schema ~ '.' ~ source.identifier -%}
            {#- One statement per call: the session method runs one statement at a time. -#}
            {%- do run_query('create database if not exists ' ~ source.schema) -%}
            {%- do run_query('drop table if exists ' ~ relation) -%}
            {%- do run_query("create table " ~ relation ~ " using parquet location '"
                ~ root ~ "/" ~ source.schema ~ "/" ~ source.identifier ~ "'") -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}

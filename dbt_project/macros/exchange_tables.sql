{#- The exchange folder, as profiles.yml's spark target names it (VALUETIER_EXCHANGE_DIR, which the
    settings export with an absolute path). -#}
{% macro exchange_root() -%}
    {{- return(env_var('VALUETIER_EXCHANGE_DIR', '../data/exchange')) -}}
{%- endmacro %}

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
        {%- set root = exchange_root() -%}
        {#- Only the sources the selected nodes read: the others may not be written yet (the
            tiers before the first scoring), and Spark cannot register a folder without files. -#}
        {%- set read = [] -%}
        {%- for id in selected_resources if id in graph.nodes -%}
            {%- do read.extend(graph.nodes[id].depends_on.nodes | select('in', graph.sources) | list) -%}
        {%- endfor -%}
        {%- for id in read | unique | sort -%}
            {%- set source = graph.sources[id] -%}
            {%- set relation = source.schema ~ '.' ~ source.identifier -%}
            {#- One statement per call: the session method runs one statement at a time. -#}
            {%- do run_query('create database if not exists ' ~ source.schema) -%}
            {%- do run_query('drop table if exists ' ~ relation) -%}
            {%- do run_query("create table " ~ relation ~ " using parquet location '"
                ~ root ~ "/" ~ source.schema ~ "/" ~ source.identifier ~ "'") -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}

{#- The columns of every stored model this run built, as an empty Parquet file under
    VALUETIER_EXCHANGE_DIR/schemas/<schema>/<table>/: Spark writes no file for a partitioned table
    without rows, and Python reads each model through its files (valuetier/exchange.py,
    mirror_spark_models). Runs as on-run-end (dbt_project.yml). -#}
{% macro write_exchange_schemas() -%}
    {{ return(adapter.dispatch('write_exchange_schemas', 'valuetier')()) }}
{%- endmacro %}

{% macro default__write_exchange_schemas() -%}
{%- endmacro %}

{% macro spark__write_exchange_schemas() -%}
    {%- if execute -%}
        {%- set root = exchange_root() -%}
        {%- for result in results | sort(attribute='node.unique_id') -%}
            {%- set node = result.node -%}
            {%- if node.resource_type == 'model' and node.config.materialized != 'view'
                and result.status == 'success' -%}
                {%- do run_query("insert overwrite directory '" ~ root ~ "/schemas/" ~ node.schema ~ "/"
                    ~ node.alias ~ "' using parquet select * from " ~ node.schema ~ "." ~ node.alias ~ " limit 0") -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}

{#- The development key; the Python settings object holds the same literal (valuetier/settings.py). -#}
{% macro development_pii_key() -%}valuetier-development-key-do-not-use-in-production{%- endmacro %}

{% macro pii_key() -%}{{ env_var('VALUETIER_PII_KEY', development_pii_key()) }}{%- endmacro %}

{#- Keyed hash of personal data: sha256 over a secret key and the normalised value.
    Without the key nobody can test a guessed name or phone number against the hash. -#}
{% macro hash_pii(column) -%}
    case when {{ column }} is null then null
         else sha256('{{ pii_key() }}' || '|' || lower(trim(cast({{ column }} as varchar)))) end
{%- endmacro %}

{% macro warn_if_development_pii_key() %}
    {% if execute and pii_key() == development_pii_key() %}
        {{ log("WARNING: VALUETIER_PII_KEY is not set; personal data is hashed with the public development key.", info=True) }}
    {% endif %}
{% endmacro %}

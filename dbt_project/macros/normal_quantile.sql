{#- The standard normal quantile z with P(Z > z) = p, for 0 < p <= 0.5, as SQL both engines read:
    Abramowitz and Stegun 26.2.23 (absolute error under 4.5e-4), where neither engine has an
    inverse normal function. `p` is a SQL expression. -#}
{% macro normal_upper_quantile(p) -%}
    (sqrt(-2 * ln({{ p }}))
    - (2.515517 + 0.802853 * sqrt(-2 * ln({{ p }})) + 0.010328 * (-2 * ln({{ p }})))
    / (1 + 1.432788 * sqrt(-2 * ln({{ p }})) + 0.189269 * (-2 * ln({{ p }}))
        + 0.001308 * sqrt(-2 * ln({{ p }})) * (-2 * ln({{ p }}))))
{%- endmacro %}

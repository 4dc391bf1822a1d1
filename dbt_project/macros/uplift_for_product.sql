{#- The predicted uplift, from a row of marts.customer_uplift_monthly aliased `uplift`, for the product
    in `product_column`: the table has one column per product type of the contract
    (valuetier.core.contract.PRODUCT_TYPES, held equal to this list by a test). -#}
{% macro uplift_for_product(product_column, uplift) -%}
    case {{ product_column }}
        {%- for product in ['savings', 'term_deposit', 'fund', 'insurance', 'credit_card', 'loan', 'wealth'] %}
        when '{{ product }}' then {{ uplift }}.uplift_{{ product }}
        {%- endfor %}
    end
{%- endmacro %}

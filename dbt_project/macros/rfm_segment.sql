{#- The standard named RFM segments from the recency x frequency score grid (1-5 each):

        F:  1             2             3              4          5
    R 5   New           Potential     Potential      Champions  Champions
    R 4   Promising     Potential     Potential      Loyal      Loyal
    R 3   About to Sl.  About to Sl.  Need Attention Loyal      Loyal
    R 2   Hibernating   Hibernating   At Risk        At Risk    Can't Lose
    R 1   Hibernating   Hibernating   At Risk        At Risk    Can't Lose
-#}
{% macro rfm_segment(recency_score, frequency_score) -%}
    case
        when {{ recency_score }} = 5 and {{ frequency_score }} >= 4 then 'Champions'
        when {{ recency_score }} between 3 and 4 and {{ frequency_score }} >= 4 then 'Loyal'
        when {{ recency_score }} >= 4 and {{ frequency_score }} between 2 and 3 then 'Potential Loyalist'
        when {{ recency_score }} = 5 and {{ frequency_score }} = 1 then 'New'
        when {{ recency_score }} = 4 and {{ frequency_score }} = 1 then 'Promising'
        when {{ recency_score }} = 3 and {{ frequency_score }} = 3 then 'Need Attention'
        when {{ recency_score }} = 3 and {{ frequency_score }} <= 2 then 'About to Sleep'
        when {{ recency_score }} <= 2 and {{ frequency_score }} = 5 then 'Can''t Lose'
        when {{ recency_score }} <= 2 and {{ frequency_score }} between 3 and 4 then 'At Risk'
        else 'Hibernating'
    end
{%- endmacro %}

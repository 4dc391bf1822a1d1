-- Quarantined rows counted by source, delivery month and reason: what data stewards review and
-- what the bank is asked to re-deliver. Small, so rebuilt whole on every run.
select
    source,
    delivery_month,
    reason,
    count(*) as quarantined_rows,
    count(distinct source_file) as files,
    min(source_row) as first_row,
    min_by(column_name, source_row) as first_column,
    min_by(detail, source_row) as first_detail
from {{ source('raw_quarantine', 'quarantined_rows') }}
group by source, delivery_month, reason

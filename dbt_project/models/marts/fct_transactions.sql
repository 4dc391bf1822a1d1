-- Every contract-valid transaction with its anomaly flag and reason (see int_transactions_flagged).
-- The columns are those of int_transactions_flagged, documented in _marts__models.yml. A view: the
-- flagged table already holds every transaction, and a third stored copy (after raw and flagged)
-- cost a full rewrite of the month on every build (stored on Spark only: macros/incremental_by_month.sql).
{{ view_read_by_python('month_start') }}

select *
from {{ ref('int_transactions_flagged') }}
{% if is_incremental() %}where {{ in_month_window('month_start') }}{% endif %}

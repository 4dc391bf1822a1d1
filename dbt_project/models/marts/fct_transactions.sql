{{ incremental_by_month() }}
-- Every contract-valid transaction with its anomaly flag and reason (see int_transactions_flagged).
-- The columns are those of int_transactions_flagged, documented in _marts__models.yml.
select *
from {{ ref('int_transactions_flagged') }}
where {{ in_month_window('month_start') }}

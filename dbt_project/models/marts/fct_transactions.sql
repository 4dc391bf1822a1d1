-- Every contract-valid transaction with its anomaly flag and reason (see int_transactions_flagged).
-- The columns are those of int_transactions_flagged, documented in _marts__models.yml. A view: the
-- flagged table already holds every transaction, and a third stored copy (after raw and flagged)
-- cost a full rewrite of the month on every build.
{{ config(materialized='view') }}

select *
from {{ ref('int_transactions_flagged') }}

"""Ingestion: the delivery mapping, personal data hashed as it loads, the contract-checked loader
with its quarantine, and validate-landing."""

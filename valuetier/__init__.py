"""ValueTier domain package: plain Python with no Dagster import."""

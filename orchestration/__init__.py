"""Dagster wiring only: assets, checks, jobs, sensors and resources that call the valuetier package."""

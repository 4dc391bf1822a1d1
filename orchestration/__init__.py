"""Dagster wiring only: assets, checks, jobs, sensors and resources that call the valuetier package."""

import warnings

import dagster as dg

# Single-run backfills (BackfillPolicy) are marked beta and partitioned asset checks preview; we
# rely on them knowingly, so one notice per asset on every start is noise.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

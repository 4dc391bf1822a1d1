"""The demo bank generator: a bank in the raw data contract with its ground truth."""

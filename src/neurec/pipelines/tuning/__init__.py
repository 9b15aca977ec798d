"""Hyper-parameter search (neurec.tuning) as a Kedro pipeline."""

"""Ingest and split: from a configured source to index-space train/validation/test."""

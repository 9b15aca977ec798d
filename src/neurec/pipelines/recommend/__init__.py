"""Recommendations out: top-K items for every user from a chosen trained model."""

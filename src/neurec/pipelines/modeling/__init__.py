"""The per-model template: train -> evaluate, instantiated once per registered model."""

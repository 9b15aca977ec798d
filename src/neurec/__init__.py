"""neurec: neural recommenders as a Kedro project, with a plain-Python model library."""

__version__ = "0.1.0"

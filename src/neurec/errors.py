"""Errors raised for bad input: each names the file, column or parameter at fault."""


class NeurecError(ValueError):
    """Base class for every error this project raises on purpose."""


class DataError(NeurecError):
    """Input data is missing, malformed or unusable (names the file/column)."""


class ConfigError(NeurecError):
    """A parameter is missing or has an invalid value (names the parameter)."""

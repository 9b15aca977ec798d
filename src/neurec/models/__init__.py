"""Model library. Importing this package imports every module in it, so a model file
that decorates its class with ``@register`` is known everywhere without further edits."""

import importlib
import pkgutil

from neurec.models.base import Recommender, registry

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Recommender", "registry"]

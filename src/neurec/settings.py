"""Project settings (Kedro)."""

from typing import Any

from kedro.config import OmegaConfigLoader
from omegaconf import OmegaConf
from omegaconf.resolvers import oc

from neurec.hooks import MlflowTrackingHooks
from neurec.quiet import import_kedro_mlflow
from neurec.run_guard import RunGuardHooks
from neurec.validation import ParameterValidationHooks, ProjectContext

import_kedro_mlflow()  # before Kedro loads the plugin: see neurec.quiet

# pluggy calls the hooks of one priority last-registered first: the parameter check runs
# before the run lock is taken, so a refused run leaves nothing behind, not even the lock
HOOKS = (MlflowTrackingHooks(), RunGuardHooks(), ParameterValidationHooks())

# parameters completed with the config dataclasses' defaults (conf/ states only departures)
CONTEXT_CLASS = ProjectContext


class ConfigLoader(OmegaConfigLoader):
    """Kedro's loader with ``${oc.env:VAR,default}`` in every config file (mlflow.yml reads
    MLFLOW_TRACKING_URI).

    Kedro turns OmegaConf's ``oc.env`` off outside credentials when a loader is created, and
    its ``custom_resolvers`` setting registers through OmegaConf's deprecated
    ``register_new_resolver``; this registers it again with the current API, as OmegaConf
    registers its own built-ins (no annotation checks).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        OmegaConf.register_resolver("oc.env", oc.env, replace=True, annotation_validation="off")


CONFIG_LOADER_CLASS = ConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "config_patterns": {"mlflow": ["mlflow*", "mlflow*/**"]},
    # `conf/<env>/parameters*.yml` and `mlflow.yml` may override a single nested key
    "merge_strategy": {"parameters": "soft", "mlflow": "soft"},
}

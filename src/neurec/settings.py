"""Project settings (Kedro)."""

from kedro.config import OmegaConfigLoader
from omegaconf.resolvers import oc

from neurec.hooks import MlflowTrackingHooks
from neurec.run_guard import RunGuardHooks
from neurec.validation import ParameterValidationHooks, ProjectContext

# pluggy calls the hooks of one priority last-registered first: the parameter check runs
# before the run lock is taken, so a refused run leaves nothing behind, not even the lock
HOOKS = (MlflowTrackingHooks(), RunGuardHooks(), ParameterValidationHooks())

# parameters completed with the config dataclasses' defaults (conf/ states only departures)
CONTEXT_CLASS = ProjectContext

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "config_patterns": {"mlflow": ["mlflow*", "mlflow*/**"]},
    # `conf/<env>/parameters*.yml` and `mlflow.yml` may override a single nested key
    "merge_strategy": {"parameters": "soft", "mlflow": "soft"},
    # ${oc.env:VAR,default} in any config file (mlflow.yml reads MLFLOW_TRACKING_URI)
    "custom_resolvers": {"oc.env": oc.env},
}

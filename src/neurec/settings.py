"""Project settings (Kedro)."""

from kedro.config import OmegaConfigLoader
from omegaconf.resolvers import oc

from neurec.hooks import MlflowTrackingHooks, ThreadsHooks
from neurec.pipeline_registry import PipelineParametersHooks
from neurec.pipelines.reporting.hooks import ReportLocationHooks
from neurec.run_guard import RunGuardHooks
from neurec.validation import ParameterValidationHooks

# pluggy calls the hooks of one priority last-registered first: the threads block and the
# parameter check run before the run lock is taken, so a refused run leaves nothing behind,
# not even the lock; where the report is comes last of all
HOOKS = (
    ReportLocationHooks(),
    PipelineParametersHooks(),  # the pipelines' models depend on the parameters
    MlflowTrackingHooks(),
    RunGuardHooks(),
    ParameterValidationHooks(),
    ThreadsHooks(),
)

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

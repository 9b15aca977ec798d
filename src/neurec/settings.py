"""Project settings (Kedro)."""

from neurec.dataset_key import DatasetKeyConfigLoader, DatasetKeyHooks
from neurec.hooks import MlflowTrackingHooks, ThreadsHooks
from neurec.pipeline_registry import PipelineParametersHooks
from neurec.pipelines.reporting.hooks import ReportLocationHooks
from neurec.quiet import import_kedro_mlflow
from neurec.run_guard import RunGuardHooks
from neurec.validation import ParameterValidationHooks, ProjectContext

import_kedro_mlflow()  # before Kedro loads the plugin: see neurec.quiet

# pluggy calls the hooks of one priority last-registered first: the threads block and the
# parameter check run before the run lock is taken, so a refused run leaves nothing behind,
# not even the lock; the dataset key is logged last at the start and the end of a run, and
# where the report is comes last of all
HOOKS = (
    ReportLocationHooks(),
    DatasetKeyHooks(),
    PipelineParametersHooks(),  # the pipelines' models depend on the parameters
    MlflowTrackingHooks(),
    RunGuardHooks(),
    ParameterValidationHooks(),
    ThreadsHooks(),
)

# parameters completed with the config dataclasses' defaults (conf/ states only departures)
CONTEXT_CLASS = ProjectContext

# Kedro's OmegaConfigLoader, plus ${dataset_key:} in the catalog (data/<layer>/<key>/) and
# ${oc.env:VAR,default} in every file (neurec.dataset_key)
CONFIG_LOADER_CLASS = DatasetKeyConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "config_patterns": {"mlflow": ["mlflow*", "mlflow*/**"]},
    # `conf/<env>/parameters*.yml` and `mlflow.yml` may override a single nested key
    "merge_strategy": {"parameters": "soft", "mlflow": "soft"},
}

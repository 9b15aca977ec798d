"""Fail early: every parameter block a run reads is checked before its first node runs.

Each node builds its typed config itself (``build_config``), but a node runs only when
its inputs are ready: a bad ``neumf`` value would stop the run after GMF and NCF have
trained, a bad protocol after EASE has saved a model. This hook builds, before the first
node, the config of every block the pipeline being run reads (``params:<block>`` inputs):
``data`` (its top-level keys; the chosen source checks its own sub-block when it loads),
``split``, ``evaluation``, ``report``, ``recommend``, ``training``, each model's block, and
``tune`` (with the tuned model's block and search space, ``neurec.tuning``).
A bad value stops the run with the same ``ConfigError`` the node would raise; nothing is
written.

Each default is stated once, in its config dataclass, and ``conf/`` sets only what a project
changes, so a block in ``conf/`` is short. :class:`ProjectContext` gives the run the blocks
completed with their defaults (:func:`effective_parameters`): nodes, the parameters
kedro-mlflow logs (one per leaf) and kedro-viz show every value a run uses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from kedro.io import CatalogProtocol
from kedro.pipeline import Pipeline

from neurec.errors import ConfigError
from neurec.evaluation import EvaluationConfig, Protocol
from neurec.models import registry
from neurec.models.base import build_config
from neurec.pipelines.recommend.nodes import RecommendConfig
from neurec.pipelines.reporting.nodes import ReportConfig
from neurec.sources import check_data_params
from neurec.split import SplitConfig
from neurec.threads import ThreadsConfig
from neurec.training import TrainingConfig
from neurec.tuning import TuneConfig, Tuning

PARAMS_PREFIX = "params:"
# parameter block -> the config its node builds (models: their own config_class)
BLOCK_CONFIGS: dict[str, type] = {
    "split": SplitConfig,
    "evaluation": EvaluationConfig,
    "report": ReportConfig,
    "recommend": RecommendConfig,
    "training": TrainingConfig,
    "threads": ThreadsConfig,
    "tune": TuneConfig,  # checked with its model's search space (Tuning)
}


def parameter_blocks(pipeline: Pipeline) -> list[str]:
    """The top-level parameter blocks the pipeline's nodes read (``params:split`` -> split)."""
    return sorted(
        {
            name.removeprefix(PARAMS_PREFIX).split(".")[0]
            for name in pipeline.inputs()
            if name.startswith(PARAMS_PREFIX)
        }
    )


def check_parameters(parameters: Mapping[str, Any], blocks: Iterable[str]) -> None:
    """Build the config of each named block; the first bad value raises ``ConfigError``."""
    models = registry()
    model_configs = {}
    for block in blocks:
        params = parameters.get(block)
        if block == "data":
            check_data_params(params or {})
        elif block == "tune":  # reads the model it names and that model's search space
            Tuning.from_parameters(parameters)
        elif block in BLOCK_CONFIGS:
            build_config(BLOCK_CONFIGS[block], params, block)
        elif block in models:
            model_configs[block] = build_config(models[block].config_class, params, block)
    # a model started from others (NeuMF from GMF and NCF) must fit their shapes
    for name, config in model_configs.items():
        dependencies = models[name].pretrained_from(config)
        if dependencies and set(dependencies) <= set(model_configs):
            models[name].check_pretrained_configs(
                config, {dependency: model_configs[dependency] for dependency in dependencies}
            )


def as_params(value: Any) -> Any:
    """A config (or one of its values) spelled as the YAML that builds it: nested blocks as
    mappings, tuples as lists, protocols by name; ``build_config`` reads it back as equal."""
    if isinstance(value, Protocol):
        return value.name
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: as_params(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [as_params(item) for item in value]
    return value


def effective_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """``parameters`` with each typed block given (a model's, ``split``, ``evaluation``, ...)
    completed with its config's defaults, as the nodes will build it.

    A block that does not build is left as given: the validation hook reports it when a
    pipeline reads it, so a bad ``neumf`` value does not stop ``kedro run --pipelines=ease``.
    """
    configs = {**BLOCK_CONFIGS, **{name: model.config_class for name, model in registry().items()}}
    effective = dict(parameters)
    for block, config_class in configs.items():
        if block not in parameters:
            continue
        try:
            config = build_config(config_class, parameters[block], block)
        except ConfigError:
            continue
        effective[block] = as_params(config)
    return effective


class ProjectContext(KedroContext):
    """Kedro's context whose parameters are the effective ones (:func:`effective_parameters`):
    ``conf/`` states only departures from the defaults, the run sees and logs every value."""

    @property
    def params(self) -> dict[str, Any]:
        return effective_parameters(super().params)


class ParameterValidationHooks:
    @hook_impl(tryfirst=True)  # before kedro-mlflow opens a run for a run that cannot start
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: CatalogProtocol
    ) -> None:
        parameters = catalog.load("parameters")
        # a node that reads every parameter (the tune node) gets every block checked
        reads_all = "parameters" in pipeline.inputs()
        check_parameters(parameters, parameters if reads_all else parameter_blocks(pipeline))

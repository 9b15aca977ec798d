"""Project pipelines, registered explicitly by name.

For every registered model ``m``: ``kedro run --pipelines=m`` runs ingest -> split -> the
models ``m``'s config starts from (if any) -> ``m`` -> evaluate -> report. Each model
family (e.g. ``baselines``) gets a pipeline too, and ``__default__`` runs every model.
``recommend`` writes top-K items for every user from the trained model named by the
``recommend.model`` parameter. ``tune`` searches hyper-parameters of the model named by
``tune.model`` on validation (``neurec.tuning``).

Which models a pipeline trains depends on the parameters: NeuMF with ``neumf.pretrain:
true`` starts from GMF and NCF, so ``--pipelines=neumf`` trains them first; with false it
trains NeuMF alone. Kedro calls ``register_pipelines()`` without arguments, so
:class:`PipelineParametersHooks` gives it the run's parameters (the conf files merged
with ``--params``) as soon as the session has created its context, which ``KedroSession.run``
does before it looks the pipeline up. Outside a session (``kedro registry``, a plain call)
the configs' defaults decide.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kedro.config import MissingConfigException
from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from kedro.framework.project import pipelines
from kedro.pipeline import Pipeline

from neurec.models import registry
from neurec.models.base import with_dependencies
from neurec.pipelines.data.pipeline import create_pipeline as data_pipeline
from neurec.pipelines.modeling.pipeline import create_pipeline as model_pipeline
from neurec.pipelines.recommend.pipeline import create_pipeline as recommend_pipeline
from neurec.pipelines.reporting.pipeline import create_pipeline as report_pipeline
from neurec.pipelines.tuning.pipeline import create_pipeline as tune_pipeline

# the parameters of the session that created a context last (see PipelineParametersHooks)
_session_parameters: dict[str, Any] = {}


def end_to_end(names: list[str], parameters: Mapping[str, Any]) -> Pipeline:
    members = with_dependencies(names, parameters)
    return sum(
        (model_pipeline(name, parameters) for name in members), data_pipeline()
    ) + report_pipeline(members)


def register_pipelines(parameters: Mapping[str, Any] | None = None) -> dict[str, Pipeline]:
    """Every pipeline, its models' dependencies read from ``parameters`` (default: the
    current session's, see :class:`PipelineParametersHooks`)."""
    parameters = _session_parameters if parameters is None else parameters
    models = registry()
    pipelines: dict[str, Pipeline] = {"data": data_pipeline()}
    for name in models:
        pipelines[name] = end_to_end([name], parameters)
    families: dict[str, list[str]] = {}
    for name, model_class in models.items():
        families.setdefault(model_class.family, []).append(name)
    for family, names in families.items():
        if family in pipelines:
            raise ValueError(f"model family '{family}' has the same name as a model")
        pipelines[family] = end_to_end(names, parameters)
    for fixed, create in (("recommend", recommend_pipeline), ("tune", tune_pipeline)):
        if fixed in pipelines:
            raise ValueError(f"a model or family is named '{fixed}', like the {fixed} pipeline")
        pipelines[fixed] = create()
    pipelines["__default__"] = end_to_end(list(models), parameters)
    return pipelines


class PipelineParametersHooks:
    """Hands the session's parameters to :func:`register_pipelines`.

    Kedro builds the project's pipelines once, on first use, and keeps them; when a
    session's parameters differ from those the pipelines were built with (another
    ``--params`` or ``--env`` in the same process), they are built again.
    """

    # first: another hook reading context.params would build the pipelines (Kedro
    # validates parameters against them) before they know the parameters
    @hook_impl(tryfirst=True)
    def after_context_created(self, context: KedroContext) -> None:
        try:
            parameters = context.config_loader["parameters"]  # with --params merged in
        except MissingConfigException:
            parameters = {}
        if parameters != _session_parameters:
            _session_parameters.clear()
            _session_parameters.update(parameters)
            pipelines.configure(__name__)  # Kedro's reset: rebuilt on next use

"""Project pipelines, registered explicitly by name.

For every registered model ``m``: ``kedro run --pipeline=m`` runs ingest -> split -> the
models ``m`` is initialised from (if any) -> ``m`` -> evaluate -> report. Each model
family (e.g. ``baselines``) gets a pipeline too, and ``__default__`` runs every model.
``recommend`` writes top-K items for every user from the trained model named by the
``recommend.model`` parameter. ``tune`` searches hyper-parameters of the model named by
``tune.model`` on validation (``neurec.tuning``).
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from neurec.models import registry
from neurec.models.base import with_dependencies
from neurec.pipelines.data.pipeline import create_pipeline as data_pipeline
from neurec.pipelines.modeling.pipeline import create_pipeline as model_pipeline
from neurec.pipelines.recommend.pipeline import create_pipeline as recommend_pipeline
from neurec.pipelines.reporting.pipeline import create_pipeline as report_pipeline
from neurec.pipelines.tuning.pipeline import create_pipeline as tune_pipeline


def end_to_end(names: list[str]) -> Pipeline:
    members = with_dependencies(names)
    return sum((model_pipeline(name) for name in members), data_pipeline()) + report_pipeline(
        members
    )


def register_pipelines() -> dict[str, Pipeline]:
    models = registry()
    pipelines: dict[str, Pipeline] = {"data": data_pipeline()}
    for name in models:
        pipelines[name] = end_to_end([name])
    families: dict[str, list[str]] = {}
    for name, model_class in models.items():
        families.setdefault(model_class.family, []).append(name)
    for family, names in families.items():
        if family in pipelines:
            raise ValueError(f"model family '{family}' has the same name as a model")
        pipelines[family] = end_to_end(names)
    for fixed, create in (("recommend", recommend_pipeline), ("tune", tune_pipeline)):
        if fixed in pipelines:
            raise ValueError(f"a model or family is named '{fixed}', like the {fixed} pipeline")
        pipelines[fixed] = create()
    pipelines["__default__"] = end_to_end(list(models))
    return pipelines

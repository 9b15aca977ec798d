"""One pipeline template, instantiated per registered model in its own namespace."""

from collections.abc import Mapping
from functools import partial, update_wrapper
from typing import Any

from kedro.pipeline import Pipeline, node

from neurec.models.base import dependencies
from neurec.pipelines.modeling.nodes import evaluate_model, train_model

SHARED_INPUTS = {"split", "test_candidates", "training_checkpoints"}
# Datasets read outside a model's namespace (by the report, by a model initialised from this
# one, by the recommendation service) are its outputs under plain names, <model>_model etc.:
# Kedro reserves the dot for its namespacing and warns about a node reading "<other>.<x>".
# What only the namespace's own nodes read stays "<model>.<x>" (<model>.fit_report).
EXPORTED = ("model", "results", "user_metrics")


def create_pipeline(model_name: str, parameters: Mapping[str, Any] | None = None) -> Pipeline:
    """``<model>.train`` and ``<model>.evaluate`` nodes, parameters from ``params:<model>``.

    A model that is initialised from others (``pretrained_from``) takes their trained
    ``<other>_model`` datasets as extra inputs, so the DAG shows the dependency.
    """
    train = update_wrapper(partial(train_model, model_name=model_name), train_model)
    pretrained = {name: f"{name}_model" for name in dependencies(model_name, parameters)}
    template = Pipeline(
        [
            node(
                train,
                {
                    "split": "split",
                    "model_params": "params:model",
                    "training_params": "params:training",
                    "checkpoint_folder": "training_checkpoints",
                    **pretrained,
                },
                ["model", "fit_report"],
                name="train",
            ),
            node(
                evaluate_model,
                ["model", "fit_report", "split", "test_candidates", "params:evaluation"],
                ["results", "user_metrics"],
                name="evaluate",
            ),
        ]
    )
    return Pipeline(
        template,
        namespace=model_name,
        inputs=SHARED_INPUTS | set(pretrained.values()),
        outputs={kind: f"{model_name}_{kind}" for kind in EXPORTED},
        parameters={
            "params:model": f"params:{model_name}",
            "params:evaluation": "params:evaluation",
            "params:training": "params:training",
        },
    )

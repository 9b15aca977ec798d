"""One pipeline template, instantiated per registered model in its own namespace."""

from collections.abc import Mapping
from functools import partial, update_wrapper
from typing import Any

from kedro.pipeline import Pipeline, node

from neurec.models.base import dependencies
from neurec.pipelines.modeling.nodes import evaluate_model, train_model

SHARED_INPUTS = {"split", "test_candidates", "training_checkpoints"}


def create_pipeline(model_name: str, parameters: Mapping[str, Any] | None = None) -> Pipeline:
    """``<model>.train`` and ``<model>.evaluate`` nodes, parameters from ``params:<model>``.

    A model whose config (in the run's ``parameters``) starts from others
    (``pretrained_from``: NeuMF with ``pretrain: true``) takes their trained
    ``<other>.model`` datasets as extra inputs, so the DAG shows the dependency.
    """
    train = update_wrapper(partial(train_model, model_name=model_name), train_model)
    pretrained = {name: f"{name}.model" for name in dependencies(model_name, parameters)}
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
        parameters={
            "params:model": f"params:{model_name}",
            "params:evaluation": "params:evaluation",
            "params:training": "params:training",
        },
    )

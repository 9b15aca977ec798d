"""The report node, fed with the results of whichever models a pipeline trains."""

from collections.abc import Iterable

from kedro.pipeline import Pipeline, node

from neurec.pipelines.reporting.nodes import report


def create_pipeline(model_names: Iterable[str]) -> Pipeline:
    inputs = {"dataset_stats": "dataset_stats", "evaluation_params": "params:evaluation"}
    inputs.update({name: f"{name}.results" for name in model_names})
    return Pipeline(
        [node(report, inputs, ["metrics", "report_markdown", "report_plot"], name="report")]
    )

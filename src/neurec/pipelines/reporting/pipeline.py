"""The report nodes, fed with the results of whichever models a pipeline trains and the
results earlier runs saved on the same split (``saved_results``), and the tuning studies
made on it (``saved_studies``)."""

from collections.abc import Iterable

from kedro.pipeline import Pipeline, node

from neurec.pipelines.reporting.nodes import build_metrics, interactive_charts, report


def create_pipeline(model_names: Iterable[str]) -> Pipeline:
    inputs = {
        "dataset_key": "dataset_key",
        "dataset_stats": "dataset_stats",
        "evaluation_params": "params:evaluation",
        "report_params": "params:report",
        "saved_results": "saved_results",
        "saved_studies": "saved_studies",
    }
    for name in model_names:  # split again by model in nodes.split_model_inputs
        inputs[f"{name}__results"] = f"{name}_results"
        inputs[f"{name}__user_metrics"] = f"{name}_user_metrics"
    return Pipeline(
        [
            node(build_metrics, inputs, "metrics", name="collect_metrics"),
            node(
                report,
                "metrics",
                [
                    "report_markdown",
                    "report_html",
                    "report_plot",
                    "training_curves_plot",
                    "metrics_at_k_plot",
                ],
                name="report",
            ),
            node(
                interactive_charts,
                "metrics",
                ["training_curves", "metrics_at_k"],
                name="interactive_charts",
            ),
        ]
    )

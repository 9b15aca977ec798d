"""ingest -> split -> tune: ``kedro run --pipelines=tune --params tune.model=sasrec``."""

from kedro.pipeline import Pipeline, node

from neurec.pipelines.data.pipeline import create_pipeline as data_pipeline
from neurec.pipelines.tuning.nodes import tune_model


def create_pipeline() -> Pipeline:
    # the split's nodes only: candidate sampling reads the test split, tuning never does
    return data_pipeline().only_nodes("ingest", "split") + Pipeline(
        [
            node(
                tune_model,
                {
                    "split": "split",
                    "parameters": "parameters",
                    "tuning_folder": "tuning_folder",
                    "conf_folder": "configuration_folder",
                },
                "tuning_summary",
                name="tune",
            )
        ]
    )

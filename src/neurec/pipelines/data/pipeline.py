"""Wiring of ingest -> split -> candidate sampling."""

from kedro.pipeline import Pipeline, node

from neurec.pipelines.data.nodes import ingest, sample_candidates, split


def create_pipeline() -> Pipeline:
    return Pipeline(
        [
            node(
                ingest,
                "params:data",
                ["interactions", "item_metadata", "given_candidates"],
                name="ingest",
            ),
            node(split, ["interactions", "params:split"], ["split", "dataset_stats"], name="split"),
            node(
                sample_candidates,
                ["split", "given_candidates", "params:evaluation"],
                "test_candidates",
                name="sample_candidates",
            ),
        ]
    )

"""``kedro run --pipelines=recommend [--params recommend.model=ials,recommend.k=20]``."""

from kedro.pipeline import Pipeline, node

from neurec.pipelines.recommend.nodes import recommend_for_users


def create_pipeline() -> Pipeline:
    return Pipeline(
        [
            node(
                recommend_for_users,
                ["trained_models", "split", "item_metadata", "params:recommend"],
                "recommendations",
                name="recommend",
            )
        ]
    )

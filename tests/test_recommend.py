"""Recommendations out: the Python API for any history, and the recommend pipeline."""

import io
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from kedro.io import DataCatalog, DatasetError, Version

from neurec.datasets import ModelDataset, ModelShelf, ParquetChunks, SplitDataset
from neurec.errors import ConfigError, DataError
from neurec.models import registry
from neurec.pipelines.data.nodes import EMPTY_ITEMS
from neurec.pipelines.modeling.nodes import train_model
from neurec.pipelines.recommend import nodes as recommend_nodes
from neurec.pipelines.recommend.nodes import recommend_for_users
from neurec.provenance import split_fingerprint
from neurec.recommend import (
    RecommendationService,
    recommend,
    recommend_users,
    recommendation_table,
)
from neurec.sources import load_source
from neurec.split import SplitConfig, split_interactions
from tests.conftest import make_split
from tests.test_pipeline import SMALL_DATA, dataset_folder, kedro_run


@pytest.fixture(scope="module")
def served(synthetic_split):
    """EASE (reads histories) and iALS (user embeddings) fit on the synthetic train split."""
    split = synthetic_split
    train = split.train
    models = {
        "ease": registry()["ease"].from_params({}, split.n_users, split.n_items),
        "ials": registry()["ials"].from_params(
            {"factors": 16, "epochs": 3}, split.n_users, split.n_items
        ),
    }
    for model in models.values():
        model.fit(train)
    names = [f"film {i}" for i in range(split.n_items)]
    titles = pd.DataFrame({"item": split.item_index["source_id"], "title": names})
    return split, train, models, split.popularity(), titles


def source_history(split, train, user):
    return split.item_index["source_id"].to_numpy()[train.histories.of(user)].tolist()


def known_user_top(model, train, user, popularity, k=10):
    items, _ = recommend_users(model, np.array([user]), train.histories, k, popularity, [True])
    return items[0]


def test_history_model_scores_a_new_user_exactly_like_the_same_known_history(served):
    split, train, models, popularity, _ = served
    history = source_history(split, train, 3)
    result = recommend(
        models["ease"], history, 10, item_index=split.item_index, popularity=popularity
    )
    assert result.strategy == "model" and result.reason == "" and result.unknown_items == []
    expected = split.item_index["source_id"].to_numpy()[
        known_user_top(models["ease"], train, 3, popularity)
    ]
    assert result.items == expected.tolist()
    assert not set(result.items) & set(history)
    popular = recommend(models["ease"], [], 10, item_index=split.item_index, popularity=popularity)
    assert result.items != popular.items  # personalised, not the popularity list


def test_embedding_model_uses_a_known_user_but_falls_back_for_a_new_one(served):
    split, train, models, popularity, _ = served
    history = source_history(split, train, 5)
    user_id = split.user_index["source_id"].iloc[5]
    known = recommend(
        models["ials"],
        history,
        10,
        item_index=split.item_index,
        popularity=popularity,
        user=user_id,
        user_index=split.user_index,
    )
    expected = known_user_top(models["ials"], train, 5, popularity)
    assert known.strategy == "model"
    assert known.items == split.item_index["source_id"].to_numpy()[expected].tolist()
    new = recommend(models["ials"], history, 10, item_index=split.item_index, popularity=popularity)
    assert new.strategy == "popularity" and "ials" in new.reason
    ranked = [i for i in np.argsort(-popularity, kind="stable") if i not in train.histories.of(5)]
    assert new.scores == popularity[ranked[:10]].astype(float).tolist()
    assert not set(new.items) & set(history)


@pytest.mark.parametrize("history", [[], ["no such item", 10**9]])
def test_empty_or_unknown_history_is_a_cold_start_and_unknown_ids_are_reported(served, history):
    split, _, models, popularity, _ = served
    result = recommend(
        models["ease"], history, 5, item_index=split.item_index, popularity=popularity
    )
    assert result.strategy == "popularity" and "cold start" in result.reason
    assert result.unknown_items == history
    assert result.scores == sorted(popularity.astype(float), reverse=True)[:5]


def test_unknown_ids_in_a_history_are_reported_and_the_rest_is_used(served):
    split, train, models, popularity, titles = served
    history = source_history(split, train, 7)
    service = RecommendationService(models["ease"], split.item_index, popularity, titles=titles)
    mixed = service.recommend([-1, *history, "x"], k=10)
    assert mixed.unknown_items == [-1, "x"]
    assert mixed.items == service.recommend(history, k=10).items
    assert mixed.titles[0] == titles.set_index("item")["title"][mixed.items[0]]
    assert list(mixed.to_frame().columns) == ["rank", "item", "score", "title"]


def test_fewer_items_than_k_left_gives_a_shorter_list(served):
    split, _, models, popularity, _ = served
    everything_but_three = split.item_index["source_id"].tolist()[3:]
    result = recommend(
        models["ease"], everything_but_three, 10, item_index=split.item_index, popularity=popularity
    )
    assert sorted(result.items) == split.item_index["source_id"].tolist()[:3]


def test_recommend_pipeline_writes_top_k_for_every_user_outside_their_history(project_copy):
    kedro_run(project_copy, "baselines", SMALL_DATA)
    kedro_run(project_copy, "recommend", {**SMALL_DATA, "recommend": {"model": "ease", "k": 7}})
    output = dataset_folder(project_copy, "07_model_output", SMALL_DATA)
    table = pd.read_parquet(output / "recommendations.parquet")
    model_input = dataset_folder(project_copy, "05_model_input", SMALL_DATA)
    split = SplitDataset(str(model_input / "split")).load()
    users, items = split.user_index, split.item_index
    assert list(table.columns) == ["user", "rank", "item", "score", "title", "strategy"]
    assert set(table["user"]) == set(users["source_id"])
    assert (table.groupby("user")["rank"].apply(list) == [list(range(1, 8))] * len(users)).all()
    assert (table["strategy"] == "model").all()
    everything = split.everything()
    seen = pd.DataFrame(
        {
            "user": users["source_id"].to_numpy()[np.repeat(users["user"], everything.lengths())],
            "item": items["source_id"].to_numpy()[everything.items],
        }
    )
    assert table.merge(seen, on=["user", "item"]).empty

    # the Python API on the project's files answers the same for the same history
    service = RecommendationService.from_project(project_copy, "ease", params=SMALL_DATA)
    first = table[table["user"] == table["user"].iloc[0]]
    history = seen.loc[seen["user"] == first["user"].iloc[0], "item"].tolist()
    assert service.recommend(history, k=7).items == first["item"].tolist()


def test_recommend_pipeline_names_a_bad_or_untrained_model(project_copy):
    kedro_run(project_copy, "most_popular", SMALL_DATA)
    with pytest.raises(ConfigError, match=r"recommend\.model"):
        kedro_run(project_copy, "recommend", {**SMALL_DATA, "recommend": {"model": "nosuch"}})
    with pytest.raises(DataError, match=r"kedro run --pipelines=ials"):
        kedro_run(project_copy, "recommend", {**SMALL_DATA, "recommend": {"model": "ials"}})
    with pytest.raises(ConfigError, match=r"recommend\.k"):
        params = {**SMALL_DATA, "recommend": {"model": "most_popular", "k": 0}}
        kedro_run(project_copy, "recommend", params)


# --- a model file is served only on the split and as the model it was trained as ----------


def split_of(seed: int):
    options = {"n_users": 50, "n_items": 60, "min_length": 6, "mean_length": 10, "seed": seed}
    return make_split({"source": "synthetic", "synthetic": options})


@pytest.fixture(scope="module")
def two_splits():
    """Two synthetic data sets with the same numbers of users and items."""
    first, other = split_of(1), split_of(3)
    assert (first.n_users, first.n_items) == (other.n_users, other.n_items)
    return first, other


def train_and_save(split, name: str, models: Path, params: dict | None = None) -> Path:
    """The train node's model, saved where the catalog's ``<name>_model`` puts it."""
    model, _ = train_model(
        split, params, {"resume": False}, models / "checkpoints", model_name=name
    )
    dataset = ModelDataset(str(models / f"{name}.pt"), Version(None, None))
    dataset.save(model)
    return Path(dataset._get_load_path())


def serve_with_node(split, models: Path, name: str):
    return node_chunks(split, models, {"model": name, "k": 5})


def serve_with_service(split, models: Path, name: str) -> RecommendationService:
    catalog = DataCatalog.from_config(
        {
            "{model}_model": {
                "type": "neurec.datasets.ModelDataset",
                "filepath": str(models / "{model}.pt"),
                "versioned": True,
            }
        }
    )
    catalog["split"] = split
    catalog["item_metadata"] = EMPTY_ITEMS
    return RecommendationService.from_catalog(catalog, name)


SERVERS = [serve_with_node, serve_with_service]


@pytest.mark.parametrize("serve", SERVERS)
def test_a_model_trained_on_other_data_of_the_same_shape_is_refused(two_splits, tmp_path, serve):
    trained_on, current = two_splits
    saved = train_and_save(trained_on, "ease", tmp_path)
    serve(trained_on, tmp_path, "ease")  # its own split: served
    with pytest.raises(DataError) as refused:
        serve(current, tmp_path, "ease")
    message = str(refused.value)
    fingerprints = [s.fingerprint for s in two_splits]
    assert fingerprints[0] != fingerprints[1]
    assert str(saved) in message and "kedro run --pipelines=ease" in message
    assert all(fingerprint in message for fingerprint in fingerprints)


@pytest.mark.parametrize("serve", SERVERS)
def test_a_model_file_of_another_class_is_refused_naming_both(two_splits, tmp_path, serve):
    split, _ = two_splits
    sasrec = train_and_save(split, "sasrec", tmp_path, {"epochs": 1, "hidden_size": 16})
    slot = tmp_path / "ease.pt" / sasrec.parent.name / "ease.pt"
    slot.parent.mkdir(parents=True)
    shutil.copy(sasrec, slot)
    with pytest.raises(DataError, match=r"'sasrec' model \(SASRec\), not the 'ease'") as refused:
        serve(split, tmp_path, "ease")
    assert str(slot) in str(refused.value)
    assert "kedro run --pipelines=ease" in str(refused.value)


@pytest.mark.parametrize("serve", SERVERS)
def test_a_model_file_from_before_fingerprints_is_refused_with_the_retrain_command(
    two_splits, tmp_path, serve
):
    split, _ = two_splits
    saved = train_and_save(split, "ease", tmp_path)
    payload = torch.load(saved, weights_only=True)
    del payload["data_fingerprint"]  # what save_model wrote before this check existed
    torch.save(payload, saved)
    with pytest.raises(DataError, match=r"no fingerprint.*kedro run --pipelines=ease"):
        serve(split, tmp_path, "ease")


def test_the_fingerprint_survives_the_parquet_round_trip_and_moves_with_any_table():
    options = {"n_users": 50, "n_items": 60, "min_length": 6, "mean_length": 10, "seed": 1}
    split = split_interactions(
        load_source({"source": "synthetic", "synthetic": options}).interactions, SplitConfig()
    )
    tables = [split.train, split.validation, split.user_index, split.item_index]
    fingerprint = split_fingerprint(*tables)
    buffers = [io.BytesIO() for _ in tables]
    for table, buffer in zip(tables, buffers, strict=True):
        table.astype({c: "int32" for c in table.columns if c != "source_id"}).to_parquet(buffer)
    assert split_fingerprint(*(pd.read_parquet(b) for b in buffers)) == fingerprint
    for position in range(4):
        changed = list(tables)
        changed[position] = changed[position].iloc[::-1].reset_index(drop=True)
        assert split_fingerprint(*changed) != fingerprint, position


# --- the recommend node streams the table in chunks of recommend.batch_size users ---------


def node_chunks(split, models: Path, params: dict, titles: pd.DataFrame = EMPTY_ITEMS):
    return recommend_for_users(ModelShelf(models), split, titles, params)


def test_chunks_of_users_make_exactly_the_table_scored_at_once(two_splits, tmp_path):
    split, _ = two_splits
    train_and_save(split, "ease", tmp_path / "models")
    titles = pd.DataFrame(
        {"item": split.item_index["source_id"][::2], "title": "a film"}
    )  # half the items have titles
    chunks = list(
        node_chunks(split, tmp_path / "models", {"model": "ease", "k": 5, "batch_size": 7}, titles)
    )
    assert len(chunks) == -(-split.n_users // 7)
    assert all(chunk["user"].nunique() <= 7 for chunk in chunks)

    # what the node computed before it streamed: every user at once, in one table
    model = ModelShelf(tmp_path / "models").load("ease", split.fingerprint)
    histories = split.everything()
    use_model = np.ones(split.n_users, dtype=bool)
    users = np.arange(split.n_users)
    items, scores = recommend_users(model, users, histories, 5, split.popularity(), use_model)
    at_once = recommendation_table(
        split.user_index["source_id"].to_numpy(), items, scores, use_model, split.item_index, titles
    ).astype({"rank": np.int32})
    streamed = pd.concat(chunks, ignore_index=True)
    pd.testing.assert_frame_equal(streamed, at_once)

    # written chunk by chunk and read back as one table, in compact dtypes
    dataset = ParquetChunks(str(tmp_path / "recommendations.parquet"))
    dataset.save(iter(chunks))
    loaded = dataset.load()
    pd.testing.assert_frame_equal(loaded, at_once)
    assert (loaded["rank"].dtype, loaded["score"].dtype) == (np.int32, np.float32)
    assert loaded["user"].dtype == split.user_index["source_id"].dtype
    first = split.user_index["source_id"].iloc[0]
    part = ParquetChunks(
        dataset._path, {"columns": ["user", "item"], "filters": [("user", "==", first)]}
    ).load()
    pd.testing.assert_frame_equal(
        part, at_once.loc[at_once["user"] == first, ["user", "item"]].reset_index(drop=True)
    )


def synthetic_of(n_users: int):
    options = {"n_users": n_users, "n_items": 200, "min_length": 5, "mean_length": 8, "seed": 3}
    return make_split({"source": "synthetic", "synthetic": options})


def stream_to_parquet(n_users: int, folder: Path) -> tuple[int, int]:
    """(rows of the largest chunk the dataset received, peak bytes traced while writing)."""
    split = synthetic_of(n_users)
    train_and_save(split, "most_popular", folder / "models")
    chunks = node_chunks(split, folder / "models", {"model": "most_popular", "batch_size": 500})
    assert not isinstance(chunks, pd.DataFrame), "the node built the whole table in memory"
    sizes = []

    def received(chunks):
        for chunk in chunks:
            sizes.append(len(chunk))
            yield chunk

    tracemalloc.start()
    try:
        ParquetChunks(str(folder / "recommendations.parquet")).save(received(chunks))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sum(sizes) == n_users * 10  # k = 10 for every user, 200 items
    return max(sizes), peak


def test_memory_while_writing_does_not_grow_with_the_number_of_users(tmp_path):
    largest_small, peak_small = stream_to_parquet(2_000, tmp_path / "small")
    largest_large, peak_large = stream_to_parquet(20_000, tmp_path / "large")
    assert largest_small == largest_large == 500 * 10  # batch_size users x k rows
    assert peak_large < 2 * peak_small, (peak_small, peak_large)  # 10 times the users


def test_a_run_failing_mid_stream_leaves_the_previous_recommendations(project_copy, monkeypatch):
    kedro_run(project_copy, "most_popular", SMALL_DATA)
    recommended = {"model": "most_popular", "k": 3, "batch_size": 50}
    kedro_run(project_copy, "recommend", {**SMALL_DATA, "recommend": recommended})
    folder = dataset_folder(project_copy, "07_model_output", SMALL_DATA)
    written = (folder / "recommendations.parquet").read_bytes()
    table = pd.read_parquet(folder / "recommendations.parquet")
    # one file of every user (the runner saved the stream once, not chunk over chunk)
    assert table["user"].nunique() == SMALL_DATA["data"]["synthetic"]["n_users"] == 120
    assert pq.ParquetFile(folder / "recommendations.parquet").num_row_groups == 3

    calls = []

    def fails_on_the_third_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("scoring failed half-way")
        return recommendation_table(*args, **kwargs)

    monkeypatch.setattr(recommend_nodes, "recommendation_table", fails_on_the_third_chunk)
    with pytest.raises(DatasetError, match="scoring failed half-way"):
        kedro_run(project_copy, "recommend", {**SMALL_DATA, "recommend": {**recommended, "k": 4}})
    assert len(calls) == 3
    assert (folder / "recommendations.parquet").read_bytes() == written
    assert sorted(p.name for p in folder.iterdir() if "recommendations" in p.name) == [
        "recommendations.parquet"
    ]

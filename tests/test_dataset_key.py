"""Outputs kept apart per data set: the key, the catalog's paths, and serving by key."""

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from kedro.io import DatasetError, Version

from neurec.dataset_key import (
    DatasetKeyConfigLoader,
    dataset_key,
    project_config_loader,
    project_dataset_key,
)
from neurec.datasets import ModelDataset, ModelShelf, TrainedModels, load_model
from neurec.errors import DataError
from neurec.recommend import RecommendationService
from tests.conftest import PROJECT_ROOT
from tests.test_pipeline import SMALL_DATA, dataset_folder, kedro_run
from tests.test_recommend import split_of, train_and_save

DEFAULTS = {
    "data": {
        "source": "synthetic",
        "path": None,
        "synthetic": {"n_users": 800, "n_items": 400, "mean_length": 40, "seed": 7},
        "movielens": {"variant": "100k", "cache_dir": "data/01_raw"},
    },
    "split": {"method": "leave_one_out", "min_user_interactions": 5, "seed": 0},
}
ML100K = {"source": "movielens", "path": "../shared/data/ml-100k/u.data"}


def changed(block: str, **values) -> dict:
    """DEFAULTS with ``values`` set in ``block`` ("data", "split" or "data.<source>")."""
    params = json.loads(json.dumps(DEFAULTS))
    target = params
    for part in block.split("."):
        target = target[part]
    target.update(values)
    return params


def test_the_key_is_readable_and_short():
    key = dataset_key(DEFAULTS)
    assert re.fullmatch(r"synthetic-800u-400i-s7_loo5-[0-9a-f]{6}", key), key
    assert dataset_key(changed("data", **ML100K)).startswith("movielens-ml-100k-u_loo5-")
    assert dataset_key(changed("data", source="movielens")).startswith("movielens-100k_loo5-")
    temporal = changed("split", method="temporal", min_user_interactions=10)
    assert dataset_key(temporal).startswith("synthetic-800u-400i-s7_temporal10-")
    odd = changed("data", source="csv", path="/tmp/My Shop/orders 2024.csv.gz")
    assert re.fullmatch(r"csv-My-Shop-orders-2024\.csv_loo5-[0-9a-f]{6}", dataset_key(odd))


@pytest.mark.parametrize(
    ("block", "values"),
    [
        ("data", {"source": "movielens"}),
        ("data", ML100K),
        ("data.synthetic", {"mean_length": 41}),  # a setting the readable part leaves out
        ("data.synthetic", {"sequential_strength": 0.5}),  # a setting not in conf/base
        ("split", {"seed": 1}),
        ("split", {"min_item_interactions": 2}),
        ("split", {"rating_threshold": 4}),
    ],
)
def test_every_setting_of_the_source_and_split_changes_the_key(block, values):
    assert dataset_key(changed(block, **values)) != dataset_key(DEFAULTS)


def test_settings_that_do_not_make_the_split_keep_the_key():
    key = dataset_key(DEFAULTS)
    assert dataset_key(changed("data.movielens", variant="1m")) == key  # another source's block
    assert dataset_key({**DEFAULTS, "ease": {"l2": 1.0}, "evaluation": {"seed": 1}}) == key
    movielens = changed("data", source="movielens")
    moved = changed("data", source="movielens")
    moved["data"]["movielens"]["cache_dir"] = "/elsewhere"  # where the download is kept
    assert dataset_key(moved) == dataset_key(movielens)


def test_catalog_paths_follow_the_runtime_params_and_raw_downloads_stay_shared():
    params = {"data": ML100K}
    key = project_dataset_key(PROJECT_ROOT, params=params)
    assert key.startswith("movielens-ml-100k-u_") and key != project_dataset_key(PROJECT_ROOT)
    loader = project_config_loader(PROJECT_ROOT, params=params)
    catalog = loader["catalog"]
    paths = [
        value
        for entry in catalog.values()
        for value in json.dumps(entry).split('"')
        if value.startswith("data/")
    ]
    assert paths and all(re.match(rf"data/0[2-9]_\w+/{key}(/|$)", p) for p in paths), paths
    assert catalog["dataset_key"]["key"] == key
    assert loader["parameters"]["data"]["movielens"]["cache_dir"] == "data/01_raw"


def test_each_loader_resolves_its_own_key_whichever_loaded_last():
    conf = str(PROJECT_ROOT / "conf")
    first = DatasetKeyConfigLoader(conf, base_env="base", default_run_env="base")
    other = DatasetKeyConfigLoader(
        conf, base_env="base", default_run_env="base", runtime_params={"data": ML100K}
    )
    keys = [loader["catalog"]["dataset_key"]["key"] for loader in (first, other, first)]
    assert keys[0] == keys[2] != keys[1]


# --- a model is served on the data set it was trained on, or refused naming both keys ----


@pytest.fixture(scope="module")
def split():
    return split_of(1)


def fingerprint(split) -> str:
    return split.fingerprint


def save_under(split, name: str, models, key: str):
    """The train node's model for ``split``, saved as the catalog's ``<name>.model`` of the
    data set ``key`` (``data/06_models/<key>/<name>.pt/<version>/``); its path."""
    model = load_model(train_and_save(split, name, models.parent / "scratch"))
    dataset = ModelDataset(str(models / key / f"{name}.pt"), Version(None, None), key)
    dataset.save(model)
    return Path(dataset._get_load_path())


def test_a_model_file_records_the_data_set_it_was_saved_under(split, tmp_path):
    unkeyed = train_and_save(split, "most_popular", tmp_path / "plain")
    assert load_model(unkeyed).dataset_key is None
    keyed = save_under(split, "most_popular", tmp_path / "06_models", "A")
    assert load_model(keyed).dataset_key == "A"


def test_a_model_copied_from_another_data_set_is_refused_naming_both_keys(split, tmp_path):
    models = tmp_path / "06_models"
    saved = save_under(split, "ease", models, "A")
    ModelShelf(models / "A", "A").load("ease", fingerprint(split))  # served on its own
    copied = models / "B" / "ease.pt"
    shutil.copytree(saved.parents[1], copied)  # the same split's model, only moved
    with pytest.raises(DataError) as refused:
        ModelShelf(models / "B", "B").load("ease", fingerprint(split))
    message = str(refused.value)
    assert "data set A, not on this run's data set B" in message
    assert "kedro run --pipelines=ease" in message and str(copied) in message


def test_a_model_missing_for_this_data_set_names_where_it_is_trained(split, tmp_path):
    models = tmp_path / "06_models"
    save_under(split, "ease", models, "A")
    save_under(split, "most_popular", models, "B")
    with pytest.raises(DataError) as refused:
        ModelShelf(models / "B", "B").load("ease", fingerprint(split))
    message = str(refused.value)
    assert "no trained model 'ease' for data set B" in message
    assert "(trained for it: most_popular)" in message
    assert "'ease' was trained on data set A" in message
    assert "kedro run --pipelines=ease with this run's --params" in message
    nothing = r"no model was trained for data set C .*models were trained on data set A and B"
    with pytest.raises(DatasetError, match=nothing):
        TrainedModels(str(models / "C"), "C").load()  # Kedro wraps a dataset's DataError


# --- whole runs: two data sets in one project -----------------------------------------


def test_two_data_sets_keep_their_split_models_and_report_apart(project_copy, caplog):
    """Training on B after A overwrites nothing of A: A's EASE still recommends, from A's
    split, in the pipeline and the Python service (before keys: a shape error)."""
    first = SMALL_DATA
    other = {"data": {"synthetic": {"n_users": 90, "n_items": 200, "mean_length": 15}}}
    caplog.set_level("INFO", logger="neurec")
    for params in (first, other):
        kedro_run(project_copy, "ease", params)
    key = project_dataset_key(project_copy, params=first)
    assert f"data set {key}: files in" in caplog.text and f"data set {key}: run done" in caplog.text

    for params, users in ((first, 120), (other, 90)):
        key = project_dataset_key(project_copy, params=params)
        reporting = dataset_folder(project_copy, "08_reporting", params)
        assert json.loads((reporting / "metrics.json").read_text())["dataset_key"] == key
        assert f"data set `{key}`" in (reporting / "report.md").read_text()
        split = dataset_folder(project_copy, "05_model_input", params) / "split"
        assert len(pd.read_parquet(split / "user_index.parquet")) == users

        kedro_run(project_copy, "recommend", {**params, "recommend": {"model": "ease", "k": 5}})
        output = dataset_folder(project_copy, "07_model_output", params)
        table = pd.read_parquet(output / "recommendations.parquet")
        assert table["user"].nunique() == users and (table["strategy"] == "model").all()
        service = RecommendationService.from_project(project_copy, "ease", params=params)
        assert service.model.dataset_key == key and service.model.n_users == users
        train = pd.read_parquet(split / "train.parquet")
        items = pd.read_parquet(split / "item_index.parquet")["source_id"]
        history = items.iloc[train.loc[train["user"] == 0, "item"]].tolist()
        assert len(service.recommend(history, k=5).items) == 5


def test_recommending_for_a_data_set_without_models_names_the_trained_ones(project_copy):
    kedro_run(project_copy, "most_popular", SMALL_DATA)
    trained = project_dataset_key(project_copy, params=SMALL_DATA)
    other = {"data": {"synthetic": {"n_users": 90, "n_items": 200}}}
    with pytest.raises(DatasetError) as refused:
        kedro_run(project_copy, "recommend", {**other, "recommend": {"model": "most_popular"}})
    message = str(refused.value)
    assert project_dataset_key(project_copy, params=other) in message and trained in message
    assert "kedro run --pipelines=<model>" in message
    causes = [refused.value]
    while causes[-1].__cause__ is not None:
        causes.append(causes[-1].__cause__)
    assert isinstance(causes[-1], DataError)  # so `kedro run` prints it as one line

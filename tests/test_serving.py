"""A trained model shipped as an MLflow model and served over HTTP by `mlflow models serve`.

One Kedro run trains SASRec and one EASE (tiny synthetic data, one epoch) in a project copy;
`mlflow models serve` serves `models:/neurec-sasrec/latest` from the copy's store (one
server for the module), EASE is loaded in-process with `mlflow.pyfunc.load_model`. Every
answer must equal `RecommendationService.recommend` for the same history.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from neurec.datasets import SplitDataset
from neurec.recommend import RecommendationService
from neurec.serving_benchmark import post, served, server_env, thread_count, training_params
from tests.conftest import copy_project
from tests.test_pipeline import SMALL_DATA, dataset_folder, kedro_run

SERVED = ("sasrec", "ease")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, empty_mlflow_store) -> Iterator[Path]:
    """A project copy in which `kedro run --pipelines=sasrec` and `--pipelines=ease` ran."""
    project = copy_project(tmp_path_factory.mktemp("served"), empty_mlflow_store)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        for model in SERVED:
            kedro_run(project, model, {**SMALL_DATA, "sasrec": {"epochs": 1}})
        yield project
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="module")
def server(trained) -> Iterator[str]:
    """`mlflow models serve` of neurec-sasrec on 127.0.0.1, stopped with its process group."""
    store = f"sqlite:///{trained / 'mlflow.db'}"
    with served("models:/neurec-sasrec/latest", store, trained, trained / "server.log") as url:
        yield url


def requests_for(project: Path) -> list[dict]:
    """A known user's history, a new user's, one with an unknown id, a cold start."""
    model_input = dataset_folder(project, "05_model_input", SMALL_DATA)
    split = SplitDataset(str(model_input / "split")).load()
    items = split.item_index["source_id"]
    users = split.user_index["source_id"]
    known = items.iloc[split.train.histories.of(0)].tolist()
    new = items.iloc[[3, 17, 42, 5]].tolist()  # a history no user has, in this order
    return [
        {"user": int(users.iloc[0]), "history": known, "k": 10},
        {"history": new, "k": 5},
        {"history": [*new[:2], 10**9], "k": 3},
        {"user": int(users.iloc[1]), "history": []},  # k: the default
    ]


def assert_same_answers(predictions: list[dict], service: RecommendationService, rows: list):
    assert len(predictions) == len(rows)
    for answer, row in zip(predictions, rows, strict=True):
        expected = service.recommend(row["history"], k=row.get("k", 10), user=row.get("user"))
        assert answer["items"] == expected.items
        assert answer["scores"] == pytest.approx(expected.scores, rel=1e-6)
        assert answer["titles"] == expected.titles
        assert answer["strategy"] == expected.strategy
        assert answer["reason"] == expected.reason
        assert answer["unknown_items"] == expected.unknown_items


def test_served_sasrec_answers_as_the_python_service(trained, server):
    rows = requests_for(trained)
    status, body = post(server, {"dataframe_records": rows})
    assert status == 200, body
    predictions = body["predictions"]
    service = RecommendationService.from_project(trained, "sasrec", params=SMALL_DATA)
    assert_same_answers(predictions, service, rows)
    new_user, with_unknown, cold = predictions[1:]
    assert new_user["strategy"] == "model" and len(new_user["items"]) == 5
    assert with_unknown["unknown_items"] == [10**9] and with_unknown["strategy"] == "model"
    assert cold["strategy"] == "popularity" and len(cold["items"]) == 10


GOOD = {"history": [1], "k": 2}


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([{"k": 3}], "Model is missing inputs ['history']"),
        ([GOOD, {"k": 3}], "column history to type 'Array(long)'"),  # history: NaN
        ([{"history": None}], "column history to type 'Array(long)'"),
        (
            [GOOD, {"history": [1, 2], "k": 0}],
            "request row 1: 'k' must be a positive integer, got 0",
        ),
        ([GOOD, {"history": [1], "k": 2.5}], "row 1: 'k' must be a positive integer, got 2.5"),
        ([{"history": [1], "k": "ten"}], "row 0: 'k' must be a positive integer, got 'ten'"),
        ([{"history": [1], "k": True}], "row 0: 'k' must be a positive integer, got True"),
        ([{"history": [1.5], "k": 3}], "column history to type 'Array(long)'"),
        ([GOOD, {"history": ["a"]}], "column history to type 'Array(long)'"),
        ([{"history": [1], "user": "x"}], "row 0: 'user' must be a user id (an integer), got 'x'"),
    ],
)
def test_bad_requests_get_400_with_one_message(server, records, message):
    status, body = post(server, {"dataframe_records": records})
    assert status == 400
    assert message in body["message"]
    assert "stack_trace" not in body and "Traceback" not in json.dumps(body)


def test_each_run_logs_and_registers_its_model_in_the_models_run(trained):
    client = mlflow.MlflowClient(f"sqlite:///{trained / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("neurec")
    runs = client.search_runs([experiment.experiment_id])
    parents = {run.info.run_id for run in runs if MLFLOW_PARENT_RUN_ID not in run.data.tags}
    children = {run.info.run_name: run for run in runs if run.info.run_id not in parents}
    assert set(children) == set(SERVED) and len(parents) == len(SERVED)
    assert {run.data.tags[MLFLOW_PARENT_RUN_ID] for run in children.values()} == parents
    logged = client.search_logged_models([experiment.experiment_id])
    assert {(m.name, m.source_run_id) for m in logged} == {
        (name, run.info.run_id) for name, run in children.items()
    }
    for name, run in children.items():
        (version,) = client.search_model_versions(f"name = 'neurec-{name}'")
        assert version.run_id == run.info.run_id


def test_the_server_gets_the_thread_count_asked_for():
    assert server_env("sqlite:///x.db", 3)["OMP_NUM_THREADS"] == "3"
    assert server_env("sqlite:///x.db")["MLFLOW_TRACKING_URI"] == "sqlite:///x.db"
    params = training_params("movielens", "u.data", "sasrec.epochs=1", 2)
    assert params.split(",")[2:] == ["threads.torch=2", "sasrec.epochs=1"]
    assert thread_count("2") == 2 and 1 <= thread_count("auto") <= os.cpu_count()
    with pytest.raises(argparse.ArgumentTypeError, match="positive integer, got '0'"):
        thread_count("0")


def test_ease_loaded_in_process_answers_as_the_python_service(trained):
    mlflow.set_tracking_uri(f"sqlite:///{trained / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/neurec-ease/latest")
    schema = {column.name: column for column in model.metadata.get_input_schema().inputs}
    assert schema["history"].required and str(schema["history"].type) == "Array(long)"
    assert not schema["k"].required and not schema["user"].required
    rows = requests_for(trained)
    answers = model.predict(pd.DataFrame(rows)).to_dict("records")
    service = RecommendationService.from_project(trained, "ease", params=SMALL_DATA)
    assert_same_answers(answers, service, rows)
    assert answers[1]["strategy"] == "model"  # EASE reads histories: a new user too

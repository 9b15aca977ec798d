"""The tune pipeline: a resumable Optuna study on validation only, pruned, its best
configuration written as a parameters file that builds the same config."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import mlflow
import pytest
import yaml
from kedro.io import AbstractDataset, DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from neurec.datasets import CheckpointFolder
from neurec.errors import ConfigError
from neurec.models import registry
from neurec.models.base import build_config
from neurec.pipeline_registry import register_pipelines
from neurec.report.archive import StudyArchive
from neurec.tuning import Tuning, open_study, study_name, tune
from tests.conftest import make_split

GMF_SMALL = {"factors": 8, "epochs": 4, "patience": 4, "batch_size": 64, "device": "cpu"}
GOOD, USELESS = 0.03, 1.0e-7  # a learning rate that learns in one epoch, one that does not


def parameters(trials: int, **space) -> dict:
    return {
        "tune": {
            "model": "gmf",
            "trials": trials,
            "pruner": {"startup_trials": 1, "warmup_epochs": 0},
        },
        "gmf": GMF_SMALL,
        "gmf_search_space": space or {"learning_rate": {"choices": [GOOD, USELESS]}},
    }


@pytest.fixture(scope="module")
def tiny():
    # 120 users: with 60, an untrained model's validation NDCG@10 happens to exceed the
    # learning one's first epochs on some draws (0.101 vs 0.079), so pruning is luck
    options = {"n_users": 120, "n_items": 80, "min_length": 6, "mean_length": 12, "seed": 3}
    split = make_split({"source": "synthetic", "synthetic": options})
    return split, split.train, split.validation


def test_the_study_prunes_resumes_and_writes_a_parameters_file_that_builds(tiny, tmp_path):
    _, train, validation = tiny
    folder, conf = tmp_path / "data" / "09_tuning", tmp_path / "conf"
    tuning = Tuning.from_parameters(parameters(trials=2))
    # the first trial learns, the second's curve stays at its random start: pruned
    study = open_study(tuning, study_name(tuning, "tiny"), folder)
    study.enqueue_trial({"learning_rate": GOOD})
    study.enqueue_trial({"learning_rate": USELESS})
    first = tune(tuning, train, validation, folder, conf, dataset="tiny")
    assert first["trials"] == {"COMPLETE": 1, "PRUNED": 1}
    pruned = [
        t for t in open_study(tuning, first["study"], folder).trials if t.state.name == "PRUNED"
    ]
    assert len(pruned[0].intermediate_values) < GMF_SMALL["epochs"]  # stopped early

    # the same study continues in the same SQLite file: one more trial, earlier ones kept
    bigger = Tuning.from_parameters(parameters(trials=3))
    second = tune(bigger, train, validation, folder, conf, dataset="tiny")
    assert second["study"] == first["study"] and sum(second["trials"].values()) == 3
    again = tune(bigger, train, validation, folder, conf, dataset="tiny")
    assert again["trials"] == second["trials"]  # already 3 trials: nothing new to run
    assert (folder / first["study"] / "optimisation_history.png").stat().st_size > 1000
    # the report of a later run on this split finds the study, its summary and charts
    (study,) = StudyArchive(str(folder)).studies("tiny")
    assert study["trials"] == second["trials"] and study["best_value"] == second["best_value"]
    assert set(study["charts"]) == {"optimisation_history", "param_importances"}
    assert StudyArchive(str(folder)).studies("another split") == []

    # the best configuration, as `kedro run --env tuned` reads it, builds the best config
    written = yaml.safe_load(Path(second["parameters_file"]).read_text())
    assert Path(second["parameters_file"]) == conf / "tuned" / "parameters_gmf.yml"
    config = build_config(registry()["gmf"].config_class, written["gmf"], "gmf")
    best = {**GMF_SMALL, **second["best_params"]}
    assert config == build_config(registry()["gmf"].config_class, best, "gmf")
    assert dataclasses.asdict(config)["learning_rate"] == GOOD


def test_a_study_continued_after_a_kill_retries_the_trial_then_draws_new_values(tiny, tmp_path):
    _, train, validation = tiny
    folder = tmp_path / "tuning"
    tuning = Tuning.from_parameters(parameters(trials=2, learning_rate={"low": 0.01, "high": 0.1}))
    killed = open_study(tuning, study_name(tuning, "tiny"), folder).ask()  # left RUNNING
    drawn = tuning.suggest(killed)["learning_rate"]
    tune(tuning, train, validation, folder, tmp_path, "tiny")
    trials = open_study(tuning, study_name(tuning, "tiny"), folder).trials
    counted = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert counted[0].params["learning_rate"] == drawn  # the interrupted configuration, again
    assert counted[1].params["learning_rate"] != drawn  # then a fresh draw, not the same one


def test_a_study_made_with_another_search_space_is_not_continued(tiny, tmp_path):
    _, train, validation = tiny
    folder = tmp_path / "tuning"
    tune(Tuning.from_parameters(parameters(trials=1)), train, validation, folder, tmp_path, "tiny")
    other = Tuning.from_parameters(parameters(trials=2, learning_rate={"low": 0.001, "high": 0.1}))
    with pytest.raises(ConfigError, match=r"tune\.study_name: .*another search_space"):
        tune(other, train, validation, folder, tmp_path, "tiny")


class NeverTouched:
    """Stands in for the split's test part: any use of it fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"the tune pipeline read the test split ({name})")

    def __len__(self):
        raise AssertionError("the tune pipeline read the test split")


class NeverRead(AbstractDataset):
    """Stands in for the test candidates: reading them fails the test."""

    def load(self):
        raise AssertionError("the tune pipeline read the test split")

    def save(self, data):
        raise AssertionError("the tune pipeline wrote the test split")

    def _describe(self):
        return {}


def test_the_tune_node_never_reads_test_data_and_logs_a_child_run_per_trial(
    tiny, tmp_path, empty_mlflow_store
):
    split, _, _ = tiny
    pipeline = register_pipelines()["tune"]
    assert "test_candidates" not in pipeline.all_inputs()
    without_test = dataclasses.replace(split, test=NeverTouched())
    catalog = DataCatalog(
        {
            "split": MemoryDataset(without_test, copy_mode="assign"),
            "parameters": MemoryDataset(parameters(trials=2)),
            "tuning_folder": CheckpointFolder(str(tmp_path / "tuning")),
            "configuration_folder": CheckpointFolder(str(tmp_path / "conf")),
            "tuning_summary": MemoryDataset(),
            "test_candidates": NeverRead(),
        }
    )
    shutil.copy(empty_mlflow_store, tmp_path / "mlflow.db")  # its tables made already
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        # an experiment of this store: an earlier test may have left another one active
        experiment = mlflow.create_experiment("tuning-test")
        with mlflow.start_run(experiment_id=experiment) as parent:
            SequentialRunner().run(pipeline.only_nodes("tune"), catalog)
        client = mlflow.MlflowClient()
        children = client.search_runs(
            [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
        )
    finally:
        mlflow.set_tracking_uri(None)
    summary = catalog.load("tuning_summary")
    assert sum(summary["trials"].values()) == 2
    assert sorted(run.info.run_name for run in children) == ["gmf trial 0", "gmf trial 1"]
    assert all("validation.NDCG_at_10" in run.data.metrics for run in children)


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"learning_rat": {"low": 0.1, "high": 0.2}}, r"gmf_search_space\.learning_rat: .*not a"),
        ({"factors": {"low": 0, "high": 8}}, r"gmf_search_space\.factors: 0 is not valid"),
        ({"factors": {"low": 8}}, r"gmf_search_space\.factors: expected \{low"),
        ({"learning_rate": {"low": 0.1, "high": 0.01}}, r"expected low < high"),
    ],
)
def test_a_bad_search_space_names_the_key(space, message):
    with pytest.raises(ConfigError, match=message):
        Tuning.from_parameters(parameters(trials=1, **space))


def test_a_model_started_from_others_is_tuned_alone():
    params = {
        "tune": {"model": "neumf"},
        "neumf": {"pretrain": True},
        "neumf_search_space": {"learning_rate": {"low": 0.001, "high": 0.01}},
    }
    with pytest.raises(ConfigError, match=r"neumf\.pretrain=false"):
        Tuning.from_parameters(params)

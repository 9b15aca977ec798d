"""End-to-end Kedro runs in an isolated copy of the project's configuration."""

import json
from dataclasses import dataclass

import mlflow
import numpy as np
import pytest
import torch
from kedro.framework.project import pipelines as kedro_pipelines
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from neurec.dataset_key import project_dataset_key
from neurec.errors import ConfigError, DataError
from neurec.models import base, registry
from neurec.pipeline_registry import register_pipelines
from neurec.sampling import PairLookup, sample_training_negatives
from neurec.training import TorchConfig, TorchRecommender
from neurec.validation import parameter_blocks

SMALL_DATA = {"data": {"synthetic": {"n_users": 120, "n_items": 250, "mean_length": 20}}}


def kedro_run(project, pipeline="__default__", params=None):
    bootstrap_project(project)
    with KedroSession.create(project_path=project, runtime_params=params or {}) as session:
        return session.run(pipeline_names=[pipeline])


def dataset_folder(project, layer, params=None):
    """``data/<layer>/<dataset key>``: where a run of ``project`` with ``params`` keeps
    the files of ``layer`` (e.g. ``08_reporting``)."""
    return project / "data" / layer / project_dataset_key(project, params=params)


def test_default_run_writes_metrics_report_and_plot(project_copy):
    params = dict(SMALL_DATA)
    for name, model_class in registry().items():  # keep neural models to one short epoch
        if issubclass(model_class, TorchRecommender):
            params[name] = {"epochs": 1}
    kedro_run(project_copy, params=params)
    reporting = dataset_folder(project_copy, "08_reporting", params)
    metrics = json.loads((reporting / "metrics.json").read_text())
    assert set(metrics["models"]) == set(registry())
    for result in metrics["models"].values():
        assert {"train_seconds", "epochs", "metrics"} <= set(result)
        assert set(result["metrics"]) == {"full", "sampled_uniform_99", "sampled_popularity_100"}
        assert 0 <= result["metrics"]["full"]["NDCG@10"] <= 1
    assert metrics["dataset"]["users"] == 120
    report = (reporting / "report.md").read_text()
    assert "## Test metrics: `full`" in report and "metrics.png" in report
    assert (reporting / "metrics.png").stat().st_size > 1000
    # one MLflow model per trained model, registered for `mlflow models serve`
    client = mlflow.MlflowClient(f"sqlite:///{project_copy / 'mlflow.db'}")
    registered = {model.name for model in client.search_registered_models()}
    assert registered == {f"neurec-{name}" for name in registry()}


def test_every_model_and_family_has_a_pipeline():
    pipelines = register_pipelines()
    for name, model_class in registry().items():
        assert f"{name}.train" in {n.name for n in pipelines[name].nodes}
        assert name in pipelines[model_class.family].datasets() or any(
            n.namespace == name for n in pipelines[model_class.family].nodes
        )
    assert {"ingest", "split", "report"} <= {n.name for n in pipelines["__default__"].nodes}


def test_bad_source_stops_with_a_clear_error_and_writes_nothing(project_copy):
    with pytest.raises(ConfigError, match=r"data\.source"):
        kedro_run(project_copy, "ease", {"data": {"source": "nosuchsource"}})
    assert not any(p.is_file() for p in (project_copy / "data").rglob("*"))


def test_bad_model_parameter_names_it_and_leaves_no_model_file(project_copy):
    with pytest.raises(ConfigError, match=r"parameter ease\.l2"):
        kedro_run(project_copy, "ease", {**SMALL_DATA, "ease": {"l2": -1}})
    assert not (dataset_folder(project_copy, "06_models", SMALL_DATA) / "ease.pt").exists()
    assert not (dataset_folder(project_copy, "08_reporting", SMALL_DATA) / "metrics.json").exists()


def test_filtering_everything_away_fails_in_split_and_says_which_parameters(project_copy):
    params = {**SMALL_DATA, "split": {"min_item_interactions": 10**6}}
    with pytest.raises(DataError, match="min_item_interactions"):
        kedro_run(project_copy, "most_popular", params)
    assert not (dataset_folder(project_copy, "05_model_input", params) / "split").exists()


# --- the extension point: one model file + one parameters block ----------------------


@dataclass
class ItemBiasConfig(TorchConfig):
    negatives: int = 2


class ItemBias(TorchRecommender):
    """A model as a teammate would add it: learns one bias per item with BCE."""

    name = "item_bias"
    family = "toy"
    config_class = ItemBiasConfig

    def build_module(self):
        return torch.nn.Embedding(self.n_items, 1)

    def training_batches(self, train, rng):
        lookup = PairLookup(train.matrix())
        negatives = sample_training_negatives(train.user, self.config.negatives, lookup, rng)
        items = torch.as_tensor(np.concatenate([train.item, negatives.reshape(-1)]))
        labels = torch.cat([torch.ones(len(train)), torch.zeros(negatives.size)])
        order = torch.as_tensor(rng.permutation(len(items)))
        for start in range(0, len(items), self.config.batch_size):
            index = order[start : start + self.config.batch_size]
            yield items[index], labels[index]

    def batch_loss(self, batch):
        items, labels = batch
        logits = self.module(items).squeeze(1)
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)

    def score_batch(self, users, histories, items):
        full = self.module.weight.squeeze(1).expand(len(users), -1)
        return full if items is None else full.gather(1, items)


@pytest.mark.parametrize("pretrain", [True, False, True])  # and back: built again each time
def test_neumf_pipeline_trains_gmf_and_ncf_only_when_its_config_starts_from_them(
    project_copy, pretrain
):
    """The session's parameters (here --params) reach register_pipelines before the run
    looks its pipeline up (``PipelineParametersHooks``)."""
    bootstrap_project(project_copy)
    params = {"neumf": {"pretrain": pretrain}}
    with KedroSession.create(project_path=project_copy, runtime_params=params) as session:
        session.load_context()
        pipeline = kedro_pipelines["neumf"]
    nodes = {n.name: n for n in pipeline.nodes}
    dependencies = {"gmf.train", "ncf.train"}
    assert dependencies <= set(nodes) if pretrain else not dependencies & set(nodes)
    models_in = {"gmf_model", "ncf_model"} & set(nodes["neumf.train"].inputs)
    assert models_in == ({"gmf_model", "ncf_model"} if pretrain else set())
    assert dependencies <= {n.name for n in kedro_pipelines["__default__"].nodes}  # own right
    assert ("gmf" in parameter_blocks(pipeline)) == pretrain


def test_register_pipelines_reads_dependencies_from_given_parameters():
    with_pretraining = register_pipelines({"neumf": {"pretrain": True}})["neumf"]
    alone = register_pipelines({"neumf": {"pretrain": False}})["neumf"]
    assert "gmf.train" in {n.name for n in with_pretraining.nodes}
    assert {n.name for n in alone.nodes} & {"gmf.train", "ncf.train"} == set()
    # an invalid block counts with the defaults; the parameter check then stops the run
    broken = register_pipelines({"neumf": {"negatives": 0}})["neumf"]
    assert "gmf.train" in {n.name for n in broken.nodes}


@pytest.fixture
def toy_model(monkeypatch, project_copy):
    monkeypatch.setitem(base._REGISTRY, ItemBias.name, ItemBias)
    (project_copy / "conf" / "base" / "parameters_item_bias.yml").write_text(
        "item_bias:\n  epochs: 3\n  batch_size: 512\n  learning_rate: 0.05\n  negatives: 2\n"
    )
    return project_copy


def test_a_new_model_needs_only_its_file_and_parameters_block(toy_model, caplog):
    caplog.set_level("INFO", logger="neurec")
    kedro_run(toy_model, "item_bias", SMALL_DATA)
    reporting = dataset_folder(toy_model, "08_reporting", SMALL_DATA)
    metrics = json.loads((reporting / "metrics.json").read_text())
    assert list(metrics["models"]) == ["item_bias"]
    assert metrics["models"]["item_bias"]["epochs"] >= 1
    assert "item_bias epoch 1/3 loss" in caplog.text  # per-epoch progress line
    models = dataset_folder(toy_model, "06_models", SMALL_DATA)
    assert list((models / "item_bias.pt").glob("*/item_bias.pt"))
    assert "toy" in register_pipelines()

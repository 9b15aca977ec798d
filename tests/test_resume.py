"""Training resumes from its per-epoch checkpoint to the same weights and history."""

from __future__ import annotations

import json

import pytest
import torch

from neurec import workflow
from neurec.errors import ConfigError
from neurec.evaluation import make_validator
from neurec.models import registry
from neurec.pipelines.modeling import nodes
from neurec.training import Checkpoint, training_key
from tests.conftest import make_split
from tests.test_pipeline import SMALL_DATA, dataset_folder, kedro_run

TINY_SOURCE = {
    "source": "synthetic",
    "synthetic": {"n_users": 60, "n_items": 50, "mean_length": 15, "seed": 3},
}
# per model: a small config that stops early (best epoch, then `patience` epochs without
# gain), with dropout, so torch's random generator matters as much as numpy's
CONFIGS = {
    "sasrec": {
        "max_len": 10,
        "hidden_size": 16,
        "learning_rate": 3e-3,
        "epochs": 20,
        "patience": 3,
        "seed": 1,
    },
    "multvae": {"hidden_dims": [16], "latent_dim": 8, "epochs": 12, "patience": 3, "seed": 1},
    "gmf": {
        "factors": 8,
        "batch_size": 256,
        "learning_rate": 0.05,
        "epochs": 12,
        "patience": 3,
        "seed": 1,
    },
}


class Interrupted(Exception):
    """Stands in for a kill: raised while training, after some epochs were saved."""


def interrupting(validator, after_epochs: int):
    """``validator`` that raises in epoch ``after_epochs + 1``, before its checkpoint."""
    calls = 0

    def validate(model):
        nonlocal calls
        calls += 1
        if calls > after_epochs:
            raise Interrupted
        return validator(model)

    return validate


@pytest.fixture(scope="module")
def tiny():
    split = make_split(TINY_SOURCE)
    return split.train, split.validation


def build(name, train, **overrides):
    params = {**CONFIGS[name], **overrides}
    return registry()[name].from_params(params, train.n_users, train.n_items)


def checkpoint_for(model, folder, train, validation):
    return Checkpoint(folder / f"{model.name}.pt", training_key(model, (train, validation)))


def without_seconds(history):
    return [{k: v for k, v in entry.items() if k != "seconds"} for entry in history]


def assert_same_weights(model, reference):
    state, expected = model.state(), reference.state()
    assert state.keys() == expected.keys()
    for name in expected:
        assert torch.equal(state[name], expected[name]), name


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_an_interrupted_training_resumes_to_the_same_weights_and_history(
    name, tiny, tmp_path, caplog
):
    train, validation = tiny
    validator = make_validator(train, validation)
    reference = build(name, train)
    expected = reference.fit(train, validator)
    # interrupt after the best epoch, while early stopping counts epochs without gain: the
    # resumed run must carry the count and the best weights, not just the current ones
    assert expected.best_epoch + 1 < expected.epochs, "config must stop early to test this"
    after = expected.best_epoch + 1

    interrupted = build(name, train)
    checkpoint = checkpoint_for(interrupted, tmp_path, train, validation)
    with pytest.raises(Interrupted):
        interrupted.fit(train, interrupting(validator, after), checkpoint=checkpoint)
    assert checkpoint.path.exists()

    caplog.set_level("INFO", logger="neurec")
    caplog.clear()
    resumed = build(name, train)
    report = resumed.fit(train, validator, checkpoint=checkpoint_for(resumed, tmp_path, *tiny))
    budget = CONFIGS[name]["epochs"]
    assert f"{name}: resuming from checkpoint {checkpoint.path} at epoch {after}/{budget}" in (
        caplog.text
    )
    assert f"{name} epoch {after}/{budget}" not in caplog.text  # the saved epochs are not rerun
    assert_same_weights(resumed, reference)
    assert (report.epochs, report.best_epoch) == (expected.epochs, expected.best_epoch)
    assert without_seconds(report.history) == without_seconds(expected.history)
    assert not checkpoint.path.exists()  # removed once training completes
    assert list(tmp_path.iterdir()) == []  # and no temporary file is left beside it


def test_a_changed_parameter_or_data_set_starts_fresh(tiny, tmp_path, caplog):
    train, validation = tiny
    validator = make_validator(train, validation)
    interrupted = build("sasrec", train)
    with pytest.raises(Interrupted):
        interrupted.fit(
            train,
            interrupting(validator, 2),
            checkpoint=checkpoint_for(interrupted, tmp_path, train, validation),
        )
    caplog.set_level("INFO", logger="neurec")
    caplog.clear()

    changed = build("sasrec", train, learning_rate=0.002)
    changed.fit(train, validator, checkpoint=checkpoint_for(changed, tmp_path, train, validation))
    assert "was written with a different config; starting fresh" in caplog.text
    assert "resuming" not in caplog.text
    fresh = build("sasrec", train, learning_rate=0.002)
    fresh.fit(train, validator)
    assert_same_weights(changed, fresh)

    other = make_split({**TINY_SOURCE, "synthetic": {**TINY_SOURCE["synthetic"], "seed": 4}})
    other_train, other_validation = other.train, other.validation
    assert (other_train.n_users, other_train.n_items) == (train.n_users, train.n_items)
    key = training_key(build("sasrec", train), (train, validation))
    other_key = training_key(build("sasrec", other_train), (other_train, other_validation))
    assert key["config"] == other_key["config"] and key["data"] != other_key["data"]


def test_a_checkpoint_of_another_data_set_is_not_resumed(tiny, tmp_path, caplog):
    train, validation = tiny
    interrupted = build("gmf", train)
    with pytest.raises(Interrupted):
        interrupted.fit(
            train,
            interrupting(make_validator(train, validation), 2),
            checkpoint=checkpoint_for(interrupted, tmp_path, train, validation),
        )
    caplog.set_level("INFO", logger="neurec")
    caplog.clear()
    model = build("gmf", train)
    # the validation users' items now count as training data: a different data set
    checkpoint = checkpoint_for(model, tmp_path, validation, train)
    model.fit(validation, make_validator(validation, train), checkpoint=checkpoint)
    assert "was written with a different data; starting fresh" in caplog.text
    assert "resuming" not in caplog.text


# --- through Kedro --------------------------------------------------------------------------

SMALL_RUN = {
    **SMALL_DATA,
    "sasrec": {"max_len": 10, "hidden_size": 16, "epochs": 6, "patience": 6},
}


def test_a_second_kedro_run_resumes_the_interrupted_one(project_copy, monkeypatch, caplog):
    monkeypatch.setattr(
        workflow, "make_validator", lambda *args: interrupting(make_validator(*args), 3)
    )
    with pytest.raises(Interrupted):
        kedro_run(project_copy, "sasrec", SMALL_RUN)
    models = dataset_folder(project_copy, "06_models", SMALL_RUN)
    checkpoint = models / "checkpoints" / "sasrec.pt"
    assert checkpoint.exists()

    monkeypatch.setattr(workflow, "make_validator", make_validator)  # the next run: no kill
    caplog.set_level("INFO", logger="neurec")
    caplog.clear()
    kedro_run(project_copy, "sasrec", SMALL_RUN)
    assert f"sasrec: resuming from checkpoint {checkpoint} at epoch 3/6" in caplog.text
    assert "sasrec epoch 3/6" not in caplog.text and "sasrec epoch 4/6" in caplog.text
    report = json.loads((models / "sasrec_fit_report.json").read_text())
    assert [entry["epoch"] for entry in report["history"]] == [1, 2, 3, 4, 5, 6]
    assert not checkpoint.exists()


def test_resume_off_trains_from_scratch(project_copy, monkeypatch, caplog):
    params = {**SMALL_RUN, "training": {"resume": False}}
    monkeypatch.setattr(
        workflow, "make_validator", lambda *args: interrupting(make_validator(*args), 3)
    )
    with pytest.raises(Interrupted):
        kedro_run(project_copy, "sasrec", params)
    assert not (dataset_folder(project_copy, "06_models", params) / "checkpoints").exists()


def test_a_bad_resume_setting_names_the_parameter(tmp_path):
    with pytest.raises(ConfigError, match=r"parameter training\.resume: expected bool"):
        nodes.train_model(
            make_split(TINY_SOURCE), {}, {"resume": "yes"}, tmp_path, model_name="gmf"
        )

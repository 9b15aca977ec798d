"""Refit on train + validation (TorchConfig.refit): the tested model is trained anew on both
for the epoch count chosen on validation."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from neurec import workflow
from neurec.interactions import Interactions
from neurec.models import registry
from neurec.sources import load_source
from neurec.training import Checkpoint

SMALL = {"factors": 8, "epochs": 6, "patience": 2, "batch_size": 512, "learning_rate": 0.01}


@pytest.fixture(scope="module")
def split():
    return workflow.split(load_source({"source": "synthetic"}).interactions)


def same_weights(a, b) -> bool:
    return all(torch.equal(a.state()[k], b.state()[k]) for k in a.state())


def test_append_puts_each_users_later_rows_after_his_own():
    earlier = Interactions(np.array([0, 0, 2]), np.array([5, 6, 7]), 3, 10)
    later = Interactions(np.array([0, 1, 2]), np.array([1, 2, 3]), 3, 10)
    both = earlier.append(later)
    assert both.user.tolist() == [0, 0, 0, 1, 2, 2]
    assert both.item.tolist() == [5, 6, 1, 2, 7, 3]
    with pytest.raises(ValueError, match="different user or item counts"):
        earlier.append(Interactions(np.array([0]), np.array([1]), 3, 11))


def test_refit_trains_anew_on_train_and_validation_for_the_best_epoch_count(split):
    selected, plain = workflow.train("gmf", {**SMALL, "refit": False}, split)
    model, report = workflow.train("gmf", SMALL, split)
    assert plain.refit_epochs == 0 and report.best_epoch == plain.best_epoch > 0
    assert report.refit_epochs == report.best_epoch
    assert report.train_seconds > report.refit_seconds > 0
    # the report keeps the selection run's validation curve
    assert [e["val_NDCG@10"] for e in report.history] == [e["val_NDCG@10"] for e in plain.history]
    # the same seed and config, the best epoch count, fitted on both parts without validation
    expected = registry()["gmf"].from_params(
        {**SMALL, "epochs": report.best_epoch}, split.n_users, split.n_items
    )
    expected.fit(split.train.append(split.validation), None)
    assert same_weights(model, expected)
    assert not same_weights(model, selected)
    assert model.data_fingerprint == split.fingerprint


def test_neumf_refits_from_the_pretrained_models_it_was_given(split):
    brief = {"epochs": 2, "batch_size": 512, "refit": False}
    pretrained = {
        "gmf": workflow.train("gmf", {**brief, "factors": 8}, split)[0],
        "ncf": workflow.train("ncf", brief, split)[0],
    }
    params = {"factors": 8, "epochs": 3, "patience": 1, "batch_size": 512}
    model, report = workflow.train("neumf", params, split, pretrained=pretrained)
    assert report.refit_epochs == report.best_epoch > 0
    expected = registry()["neumf"].from_params(
        {**params, "epochs": report.best_epoch}, split.n_users, split.n_items, pretrained
    )
    expected.fit(split.train.append(split.validation), None)
    assert same_weights(model, expected)


def test_an_interrupted_refit_resumes_from_its_own_checkpoint(split, tmp_path, monkeypatch, caplog):
    save = Checkpoint.save

    def save_then_die_in_the_refit(self, progress):
        save(self, progress)
        if self.path.name == "gmf.refit.pt" and progress["epoch"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(Checkpoint, "save", save_then_die_in_the_refit)
    with pytest.raises(KeyboardInterrupt):
        workflow.train("gmf", SMALL, split, checkpoint_folder=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["gmf.refit.pt"]
    monkeypatch.setattr(Checkpoint, "save", save)
    with caplog.at_level(logging.INFO, logger="neurec.training"):
        resumed, report = workflow.train("gmf", SMALL, split, checkpoint_folder=tmp_path)
    assert "gmf.refit.pt at epoch 1/2" in caplog.text
    uninterrupted, _ = workflow.train("gmf", SMALL, split)
    assert report.refit_epochs == report.best_epoch == 2
    assert same_weights(resumed, uninterrupted)
    assert not list(tmp_path.iterdir())  # both checkpoints removed once their fit ended

"""Train and evaluate nodes: thin adapters over the model library and the evaluator."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from neurec.distributed import train_distributed
from neurec.evaluation import EvaluationConfig, EvaluationData, evaluate, make_validator
from neurec.interactions import Interactions
from neurec.models import Recommender, registry
from neurec.models.base import build_config
from neurec.pipelines.data.nodes import to_interactions
from neurec.provenance import split_fingerprint
from neurec.report.results import run_record
from neurec.training import (
    Checkpoint,
    TorchRecommender,
    TrainingConfig,
    process_group,
    training_key,
)

logger = logging.getLogger(__name__)


def train_model(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    user_index: pd.DataFrame,
    item_index: pd.DataFrame,
    model_params: dict[str, Any] | None,
    training_params: dict[str, Any],
    checkpoint_folder: Path,
    *,
    model_name: str,
    **pretrained: Recommender,
) -> tuple[Recommender, dict[str, Any]]:
    """Fit the registered model ``model_name`` with early stopping on validation NDCG@10.

    A neural model saves a checkpoint after every epoch and, when the last run was
    interrupted, resumes from it (``training`` parameters). The model keeps the
    fingerprint of the split it learned from, so that serving can refuse it on other data
    (``neurec.provenance``).
    """
    train_i = to_interactions(train, user_index, item_index)
    validation_i = to_interactions(validation, user_index, item_index)
    model = registry()[model_name].from_params(model_params, train_i.n_users, train_i.n_items)
    logger.info(
        "%s: training on %d interactions (%d users, %d items)",
        model_name,
        len(train_i),
        train_i.n_users,
        train_i.n_items,
    )
    model.data_fingerprint = split_fingerprint(train, validation, user_index, item_index)
    validator = make_validator(train_i, validation_i)
    checkpoint = make_checkpoint(
        model, (train_i, validation_i), pretrained, training_params, checkpoint_folder
    )
    if isinstance(model, TorchRecommender) and starts_workers(model):
        if pretrained:
            model.initialise_from(pretrained)
        report = train_distributed(model, train_i, validation_i, checkpoint)
        return model, report.to_dict()
    resume = {} if checkpoint is None else {"checkpoint": checkpoint}  # one-pass models: none
    report = model.fit(train_i, validator, pretrained or None, **resume)
    return model, report.to_dict()


def starts_workers(model: TorchRecommender) -> bool:
    """``<model>.distributed.world_size`` > 1 in a process that is not one of a group
    already (``torchrun -m neurec.distributed`` sets the group up itself)."""
    return model.config.distributed.world_size > 1 and process_group()[1] == 1


def make_checkpoint(
    model: Recommender,
    data: tuple[Interactions, ...],
    pretrained: Mapping[str, Recommender],
    training_params: Mapping[str, Any],
    folder: Path,
) -> Checkpoint | None:
    """``<folder>/<model>.pt`` for a neural model; None when ``training.resume`` is off or
    the model trains in one pass (nothing to resume)."""
    if not build_config(TrainingConfig, training_params, "training").resume:
        return None
    if not isinstance(model, TorchRecommender):
        return None
    return Checkpoint(folder / f"{model.name}.pt", training_key(model, data, pretrained))


def evaluate_model(
    model: Recommender,
    fit_report: dict[str, Any],
    train: pd.DataFrame,
    validation: pd.DataFrame,
    test: pd.DataFrame,
    user_index: pd.DataFrame,
    item_index: pd.DataFrame,
    test_candidates: pd.DataFrame,
    evaluation_params: dict[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Test metrics under every configured protocol, plus per-user values for statistics."""
    data = EvaluationData.build(
        *(to_interactions(t, user_index, item_index) for t in (train, validation, test))
    )
    started = time.perf_counter()
    config = build_config(EvaluationConfig, evaluation_params, "evaluation")
    per_user, summary = evaluate(model, data, test_candidates, config)
    seconds = time.perf_counter() - started
    for protocol, values in summary.items():
        logger.info(
            "%s %s: HR@10 %.4f NDCG@10 %.4f MRR %.4f",
            model.name,
            protocol,
            values["HR@10"],
            values["NDCG@10"],
            values["MRR"],
        )
    result = {
        "train_seconds": fit_report["train_seconds"],
        "epochs": fit_report["epochs"],
        "best_epoch": fit_report["best_epoch"],
        "evaluation_seconds": seconds,
        "metrics": summary,
        "history": fit_report["history"],
        **run_record(model, config),  # split, candidates, time, parameters: for later reports
    }
    return result, per_user

"""Train and evaluate nodes: thin adapters over the model library and the evaluator."""

from __future__ import annotations

import logging
import time
from typing import Any

import pandas as pd

from neurec.evaluation import EvaluationData, EvaluationSettings, evaluate, make_validator
from neurec.models import Recommender, registry
from neurec.pipelines.data.nodes import to_interactions
from neurec.provenance import split_fingerprint

logger = logging.getLogger(__name__)


def train_model(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    user_index: pd.DataFrame,
    item_index: pd.DataFrame,
    model_params: dict[str, Any] | None,
    *,
    model_name: str,
    **pretrained: Recommender,
) -> tuple[Recommender, dict[str, Any]]:
    """Fit the registered model ``model_name`` with early stopping on validation NDCG@10.

    The model keeps the fingerprint of the split it learned from, so that serving can
    refuse it on other data (``neurec.provenance``).
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
    report = model.fit(train_i, make_validator(train_i, validation_i), pretrained or None)
    return model, report.to_dict()


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
    per_user, summary = evaluate(
        model, data, test_candidates, EvaluationSettings.from_params(evaluation_params)
    )
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
    }
    return result, per_user

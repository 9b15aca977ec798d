"""Train and evaluate nodes: thin adapters over neurec.workflow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from neurec import workflow
from neurec.evaluation import EvaluationConfig
from neurec.models import Recommender
from neurec.models.base import build_config
from neurec.report.results import run_record
from neurec.split import Split
from neurec.training import TrainingConfig


def train_model(
    split: Split,
    model_params: dict[str, Any] | None,
    training_params: dict[str, Any],
    checkpoint_folder: Path,
    *,
    model_name: str,
    **pretrained: Recommender,
) -> tuple[Recommender, dict[str, Any]]:
    """Fit the registered model ``model_name``; its fit report (time, epochs, history).

    A neural model saves a checkpoint after every epoch in ``checkpoint_folder`` and, when
    the last run was interrupted, resumes from it, unless ``training.resume`` is off.
    """
    resume = build_config(TrainingConfig, training_params, "training").resume
    model, report = workflow.train(
        model_name,
        model_params,
        split,
        pretrained=pretrained,
        checkpoint_folder=checkpoint_folder if resume else None,
    )
    return model, report.to_dict()


def evaluate_model(
    model: Recommender,
    fit_report: dict[str, Any],
    split: Split,
    test_candidates: pd.DataFrame,
    evaluation_params: dict[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Test metrics under every configured protocol, plus per-user values for statistics.

    The results record is whole on its own (training cost and curve from ``fit_report``,
    split, candidate seed, time, parameters): a later run's report shows this model from it
    alone (``neurec.report.archive``).
    """
    config = build_config(EvaluationConfig, evaluation_params, "evaluation")
    evaluation = workflow.evaluate(model, split, test_candidates, config)
    results = {
        "train_seconds": fit_report["train_seconds"],
        "epochs": fit_report["epochs"],
        "best_epoch": fit_report["best_epoch"],
        "refit_epochs": fit_report["refit_epochs"],
        "evaluation_seconds": sum(evaluation.seconds.values()),
        "metrics": evaluation.metrics,
        "history": fit_report["history"],
        **run_record(model, config),
    }
    return results, evaluation.per_user

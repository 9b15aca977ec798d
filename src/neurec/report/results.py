"""The report's data: every model's results on one split, as the metrics.json structure.

A plain JSON-ready dict (the contract in the README), assembled from one ``ModelRun`` per
model: the ``<model>_results`` record the evaluate node wrote and its per-user metrics,
from this run or the latest earlier run on the same split (``neurec.report.archive``).
Intervals and significance tests are computed here, from the per-user metrics
(``neurec.statistics``); rendering is ``neurec.report.render``. No Kedro.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from neurec.evaluation import EvaluationConfig
from neurec.models import Recommender, registry
from neurec.models.base import check_positive
from neurec.statistics import compare_with_baseline, metric_intervals
from neurec.training import SELECTION_METRIC

BASELINE_FAMILY = "baselines"
BASELINES_COMMAND = f"kedro run --pipelines={BASELINE_FAMILY}"
# how a model's training ended, from its epochs and its epoch budget (metrics.json "stopped_by")
ONE_PASS, EARLY_STOPPING, EPOCH_BUDGET = "one_pass", "early_stopping", "epoch_budget"


@dataclass(frozen=True)
class ReportConfig:
    """The ``report`` parameters block (``conf/base/parameters_report.yml``)."""

    # the conventional 95% interval of every per-user mean metric
    confidence: float = 0.95
    # 1000 bootstrap resamples: percentile bounds stable to about 0.001 for metrics in [0, 1]
    bootstrap_resamples: int = 1000
    # 10000 sign flips: p-values resolved to 1e-4, well below alpha after Holm's correction
    permutation_resamples: int = 10000
    # the conventional significance level, after Holm's correction
    alpha: float = 0.05
    # any fixed seed: intervals and p-values are reproducible
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("confidence", "alpha"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a value in (0, 1), got {getattr(self, name)}")
        check_positive("bootstrap_resamples", self.bootstrap_resamples)
        check_positive("permutation_resamples", self.permutation_resamples)
        check_positive("seed", self.seed, allow_zero=True)


def run_record(model: Recommender, evaluation: EvaluationConfig) -> dict[str, Any]:
    """What a ``<model>_results`` file records beside the metrics, so that a later report can
    tell whether it is comparable (same split, same candidate draw) and say when and with
    which parameters the model was trained."""
    return {
        "split_fingerprint": model.data_fingerprint,
        "evaluation_seed": evaluation.seed,
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "parameters": dataclasses.asdict(model.config),
    }


def comparable_to(result: Mapping[str, Any]) -> tuple[Any, Any]:
    """Two results can share a report when this is equal: same split, same candidates."""
    return result.get("split_fingerprint"), result.get("evaluation_seed")


@dataclass(frozen=True)
class ModelRun:
    """One model's ``<model>_results`` record and per-user metrics (protocol, user, metrics)."""

    result: dict[str, Any]
    user_metrics: pd.DataFrame
    this_run: bool = True

    def on(self, protocols: list[str]) -> ModelRun:
        """The same run restricted to ``protocols`` (an earlier run may have had others)."""
        result = {**self.result, "metrics": _only(self.result["metrics"], protocols)}
        rows = self.user_metrics[self.user_metrics["protocol"].isin(protocols)]
        return dataclasses.replace(self, result=result, user_metrics=rows)


def _only(per_protocol: Mapping[str, Any], protocols: list[str]) -> dict[str, Any]:
    return {p: per_protocol[p] for p in protocols if p in per_protocol}


def stopped_by(result: Mapping[str, Any]) -> str:
    """One pass (the model has no epoch budget: closed form, counts), early stopping, or
    the epoch budget ran out."""
    budget = result.get("parameters", {}).get("epochs")
    if not isinstance(budget, int):
        return ONE_PASS
    return EPOCH_BUDGET if result["epochs"] >= budget else EARLY_STOPPING


def model_entry(name: str, run: ModelRun, settings: ReportConfig) -> dict[str, Any]:
    """metrics.json's ``models[name]``: the contract's keys, then what the report adds."""
    result = run.result
    return {
        "family": registry()[name].family,
        "train_seconds": round(result["train_seconds"], 3),
        "epochs": result["epochs"],
        "best_epoch": result["best_epoch"],
        "evaluation_seconds": round(result["evaluation_seconds"], 3),
        "metrics": result["metrics"],
        "confidence_intervals": metric_intervals(
            run.user_metrics, settings.bootstrap_resamples, settings.confidence, settings.seed
        ),
        "history": result["history"],
        "stopped_by": stopped_by(result),
        # early stopping ends `patience` epochs after the best one: a best last epoch means
        # the budget stopped a model that may still be improving
        "best_epoch_is_last": stopped_by(result) != ONE_PASS
        and result["best_epoch"] == result["epochs"],
        # epochs of the refit on train + validation that made the tested model; 0: none
        "refit_epochs": result.get("refit_epochs", 0),
        "this_run": run.this_run,
        "finished_at": result.get("finished_at"),
        "parameters": result.get("parameters", {}),
        "split_fingerprint": result.get("split_fingerprint"),
    }


def assemble(
    dataset_stats: dict[str, Any],
    evaluation: EvaluationConfig,
    settings: ReportConfig,
    runs: Mapping[str, ModelRun],
) -> dict[str, Any]:
    """The metrics.json contract, {"dataset", "protocols", "models": {m: {...}}}, plus
    per-epoch history, bootstrap intervals and the significance tests."""
    protocols = [protocol.name for protocol in evaluation.protocols]
    runs = {name: run.on(protocols) for name, run in sorted(runs.items())}
    fingerprints = {run.result.get("split_fingerprint") for run in runs.values()}
    metrics = {
        "dataset": dataset_stats,
        "protocols": {
            protocol.name: {"description": protocol.describe(), "seed": evaluation.seed}
            for protocol in evaluation.protocols
        },
        "statistics": {
            "confidence": settings.confidence,
            "method": "percentile bootstrap of the mean over test users",
            "resamples": settings.bootstrap_resamples,
            "seed": settings.seed,
        },
        "models": {name: model_entry(name, run, settings) for name, run in runs.items()},
        "split_fingerprint": fingerprints.pop() if len(fingerprints) == 1 else None,
    }
    metrics["significance"] = significance(
        metrics, {name: run.user_metrics for name, run in runs.items()}, settings
    )
    return metrics


def best_baseline(metrics: dict[str, Any], protocol: str) -> str | None:
    """The baseline-family model with the highest NDCG@10 under ``protocol``, if any."""
    baselines = [
        model
        for model, values in metrics["models"].items()
        if values["family"] == BASELINE_FAMILY and protocol in values["metrics"]
    ]
    if not baselines:
        return None
    return max(baselines, key=lambda m: metrics["models"][m]["metrics"][protocol][SELECTION_METRIC])


def significance(
    metrics: dict[str, Any], user_metrics: dict[str, pd.DataFrame], settings: ReportConfig
) -> dict[str, Any]:
    """Every model against the best baseline (chosen under ``full``), per protocol; models
    without results under a protocol (an earlier run's other protocols) sit that one out."""
    protocols = list(metrics["protocols"])
    chosen_on = "full" if "full" in protocols else protocols[0]
    baseline = best_baseline(metrics, chosen_on)
    out = {
        "metric": SELECTION_METRIC,
        "baseline": baseline,
        "chosen_on": chosen_on,
        "test": "paired sign-flip permutation test of the mean per-user difference",
        "resamples": settings.permutation_resamples,
        "correction": "holm, over the models compared within each protocol",
        "alpha": settings.alpha,
        "seed": settings.seed,
        "protocols": {},
    }
    if baseline is None:
        out["train_baseline"] = BASELINES_COMMAND
        return out
    for protocol in protocols:
        present = {
            model: table
            for model, table in user_metrics.items()
            if protocol in metrics["models"][model]["metrics"]
        }
        if baseline not in present:
            continue
        out["protocols"][protocol] = compare_with_baseline(
            present,
            baseline,
            protocol,
            SELECTION_METRIC,
            settings.permutation_resamples,
            settings.alpha,
            settings.seed,
        )
    return out

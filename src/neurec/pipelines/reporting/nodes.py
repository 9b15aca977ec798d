"""Report nodes: thin adapters over ``neurec.report`` (assemble, render, plot)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from matplotlib.figure import Figure

from neurec.evaluation import EvaluationConfig
from neurec.models.base import build_config
from neurec.report import plots
from neurec.report.archive import ResultsArchive, StudyArchive, with_earlier_runs
from neurec.report.render import AT_K_FILE, CURVES_FILE, PLOT_FILE, html_page, markdown_report
from neurec.report.results import ModelRun, ReportConfig, assemble


def split_model_inputs(per_model: Mapping[str, Any]) -> dict[str, ModelRun]:
    """``<model>__results`` / ``<model>__user_metrics`` node inputs, as one run per model."""
    parts: dict[str, dict[str, Any]] = {"results": {}, "user_metrics": {}}
    for key, value in per_model.items():
        model, _, kind = key.rpartition("__")
        parts[kind][model] = value
    return {
        model: ModelRun(result, parts["user_metrics"][model])
        for model, result in parts["results"].items()
    }


def build_metrics(
    dataset_key: str,
    dataset_stats: dict[str, Any],
    evaluation_params: dict[str, Any],
    report_params: dict[str, Any],
    saved_results: ResultsArchive,
    saved_studies: StudyArchive,
    **per_model: dict[str, Any] | pd.DataFrame,
) -> dict[str, Any]:
    """metrics.json: this run's models, the latest earlier results on the same split and
    the tuning studies made on it."""
    evaluation = build_config(EvaluationConfig, evaluation_params, "evaluation")
    settings = build_config(ReportConfig, report_params, "report")
    runs = with_earlier_runs(split_model_inputs(per_model), saved_results)
    metrics = assemble(dataset_stats, evaluation, settings, runs)
    studies = saved_studies.studies(metrics["split_fingerprint"])
    return {"dataset_key": dataset_key, **metrics, "tuning": studies}


def report(metrics: dict[str, Any]) -> tuple[str, str, Figure, Figure, Figure]:
    """report.md, report.html and the three PNG charts (bars, training curves, at K); the
    page also embeds the tuning studies' charts, which report.md links where they are."""
    images = {
        PLOT_FILE: plots.metrics_bar_figure(metrics),
        CURVES_FILE: plots.training_curves_figure(metrics),
        AT_K_FILE: plots.metrics_at_k_figure(metrics),
    }
    studies = {
        path: Path(path).read_bytes()
        for study in metrics.get("tuning", [])
        for path in study["charts"].values()
    }
    text = markdown_report(metrics)
    return text, html_page(text, {**images, **studies}), *images.values()


def interactive_charts(metrics: dict[str, Any]) -> tuple[go.Figure, go.Figure]:
    """The same charts as plotly JSON, which kedro-viz previews."""
    return plots.training_curves_plotly(metrics), plots.metrics_at_k_plotly(metrics)

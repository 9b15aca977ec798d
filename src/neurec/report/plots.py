"""The report's charts, drawn from metrics.json alone.

Each chart's data is first laid out as a long table (one function each), then drawn
twice: matplotlib for the PNGs in report.md / report.html, plotly for kedro-viz's
interactive previews. Figures are built without pyplot, so no global state leaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from plotly.subplots import make_subplots

from neurec.training import SELECTION_METRIC

CURVE_METRIC = f"val_{SELECTION_METRIC}"
AT_K_METRICS = ("HR", "NDCG")


def training_table(metrics: dict[str, Any]) -> pd.DataFrame:
    """model, epoch, loss (NaN for models without one), validation NDCG@10, best (bool)."""
    rows = [
        {
            "model": model,
            "epoch": entry["epoch"],
            "loss": entry.get("loss", float("nan")),
            "validation": entry.get(CURVE_METRIC, float("nan")),
            "best": entry["epoch"] == values.get("best_epoch"),
        }
        for model, values in metrics["models"].items()
        for entry in values.get("history", [])
    ]
    columns = ["model", "epoch", "loss", "validation", "best"]
    return pd.DataFrame(rows, columns=columns)


def at_k_table(metrics: dict[str, Any]) -> pd.DataFrame:
    """model, protocol, metric (HR/NDCG), k, value, low, high (the bootstrap interval)."""
    rows = []
    for model, values in metrics["models"].items():
        intervals = values.get("confidence_intervals", {})
        for protocol, scores in values["metrics"].items():
            for name, value in scores.items():
                metric, _, k = name.partition("@")
                if metric not in AT_K_METRICS:
                    continue
                low, high = intervals.get(protocol, {}).get(name, [value, value])
                rows.append(
                    {
                        "model": model,
                        "protocol": protocol,
                        "metric": metric,
                        "k": int(k),
                        "value": value,
                        "low": low,
                        "high": high,
                    }
                )
    columns = ["model", "protocol", "metric", "k", "value", "low", "high"]
    return pd.DataFrame(rows, columns=columns).sort_values(["model", "protocol", "metric", "k"])


# --- one look per model, without repeats ----------------------------------------------


@dataclass(frozen=True)
class Look:
    """How one model is drawn in every chart: colour, line style and marker."""

    colour: str
    linestyle: str
    marker: str

    def plotly_line(self) -> dict[str, str]:
        return {"color": to_hex(self.colour), "dash": PLOTLY_DASHES[self.linestyle]}


COLOURS = [f"C{i}" for i in range(10)]  # matplotlib's default cycle (tab10)
LINESTYLES = ("-", "--", "-.", ":")
PLOTLY_DASHES = {"-": "solid", "--": "dash", "-.": "dashdot", ":": "dot"}
# 7 markers against 10 colours (coprime): the marker changes with every model too; "*" is
# kept for the best epochs
MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def looks(models: list[str]) -> dict[str, Look]:
    """A distinct (colour, line style) for each of up to 40 models: the ten colours first,
    then each again dashed, dash-dotted and dotted."""
    return {
        model: Look(
            COLOURS[i % len(COLOURS)],
            LINESTYLES[(i // len(COLOURS)) % len(LINESTYLES)],
            MARKERS[i % len(MARKERS)],
        )
        for i, model in enumerate(models)
    }


# --- matplotlib (report PNGs) --------------------------------------------------------------


def _new_figure(width: float, height: float) -> Figure:
    # constrained layout leaves room for a legend placed outside the axes
    return Figure(figsize=(width, height), layout="constrained")


def metrics_bar_figure(metrics: dict[str, Any]) -> Figure:
    """Grouped bars: NDCG@10 of each model under each protocol, with the bootstrap intervals
    as error bars."""
    models = list(metrics["models"])
    protocols = list(metrics["protocols"])
    figure = _new_figure(max(6.0, 0.9 * len(models) + 3), 4)
    axis = figure.subplots()
    width = 0.8 / max(1, len(protocols))
    for i, protocol in enumerate(protocols):
        heights, below, above = [], [], []
        for model in models:
            value = metrics["models"][model]["metrics"].get(protocol, {}).get(SELECTION_METRIC)
            intervals = metrics["models"][model].get("confidence_intervals", {})
            low, high = intervals.get(protocol, {}).get(SELECTION_METRIC, [value, value])
            heights.append(value or 0.0)
            below.append(0.0 if value is None else value - low)
            above.append(0.0 if value is None else high - value)
        positions = [j + i * width for j in range(len(models))]
        axis.bar(positions, heights, width=width, yerr=[below, above], capsize=2, label=protocol)
    axis.set_xticks([j + width * (len(protocols) - 1) / 2 for j in range(len(models))])
    axis.set_xticklabels(models, rotation=30, ha="right")
    axis.set_ylabel(f"{SELECTION_METRIC} (test)")
    figure.legend(loc="outside right upper", fontsize="small", title="protocol")
    return figure


def training_curves_figure(metrics: dict[str, Any]) -> Figure:
    """Training loss (log scale) and validation NDCG@10 per epoch; stars: chosen epochs.

    One-pass models (closed form, counts) have a single validation value: a horizontal line.
    """
    table = training_table(metrics)
    styles = looks(list(metrics["models"]))
    figure = _new_figure(12, 4.5)
    loss_axis, validation_axis = figure.subplots(1, 2)
    for model, part in table.groupby("model", sort=False):
        look = styles[model]
        line = {"color": look.colour, "linestyle": look.linestyle, "label": model}
        if len(part) == 1:
            validation_axis.axhline(part["validation"].iloc[0], **line)
            continue
        if part["loss"].notna().any():
            loss_axis.plot(part["epoch"], part["loss"], marker=look.marker, **line)
        validation_axis.plot(part["epoch"], part["validation"], marker=look.marker, **line)
        best = part[part["best"]]
        validation_axis.plot(best["epoch"], best["validation"], "*", color=look.colour, ms=12)
    loss_axis.set(title="training loss", xlabel="epoch")
    if loss_axis.lines:
        loss_axis.set_yscale("log")  # losses of different models differ in scale
    else:
        loss_axis.text(
            0.5, 0.5, "no model with a training loss", ha="center", transform=loss_axis.transAxes
        )
    validation_axis.set(title=f"validation {SELECTION_METRIC} (full ranking)", xlabel="epoch")
    for axis in (loss_axis, validation_axis):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    # every model has a validation line (the loss axis lacks the one-pass models)
    figure.legend(*validation_axis.get_legend_handles_labels(), **LEGEND)
    return figure


def metrics_at_k_figure(metrics: dict[str, Any]) -> Figure:
    """HR@K and NDCG@K against K per protocol, shaded: 95% bootstrap intervals."""
    table = at_k_table(metrics)
    protocols = list(metrics["protocols"])
    styles = looks(list(metrics["models"]))
    figure = _new_figure(4 * len(protocols) + 2, 6.5)
    axes = figure.subplots(len(AT_K_METRICS), len(protocols), squeeze=False, sharex=True)
    for (row, metric), (column, protocol) in (
        (r, c) for r in enumerate(AT_K_METRICS) for c in enumerate(protocols)
    ):
        axis = axes[row][column]
        part = table[(table["metric"] == metric) & (table["protocol"] == protocol)]
        for model, line in part.groupby("model", sort=False):
            look = styles[model]
            axis.plot(
                line["k"],
                line["value"],
                color=look.colour,
                linestyle=look.linestyle,
                marker=look.marker,
                label=model,
            )
            axis.fill_between(line["k"], line["low"], line["high"], color=look.colour, alpha=0.15)
        axis.set(title=f"{metric}@K, {protocol}", xlabel="K" if row else None)
        axis.set_xticks(sorted(part["k"].unique()))
    figure.legend(*axes[0][0].get_legend_handles_labels(), **LEGEND)
    return figure


# one legend for the figure, right of the plots: it never hides a line, however many models
LEGEND = {"loc": "outside right upper", "fontsize": "small"}


# --- plotly (kedro-viz previews; plotly puts the legend right of the plots itself) --------


def training_curves_plotly(metrics: dict[str, Any]) -> go.Figure:
    table = training_table(metrics)
    styles = looks(list(metrics["models"]))
    figure = make_subplots(
        rows=1, cols=2, subplot_titles=("training loss", f"validation {SELECTION_METRIC}")
    )
    for model, part in table.groupby("model", sort=False):
        common = {
            "name": model,
            "legendgroup": model,
            "mode": "lines+markers",
            "line": styles[model].plotly_line(),
        }
        if part["loss"].notna().any():
            figure.add_trace(
                go.Scatter(x=part["epoch"], y=part["loss"], showlegend=False, **common), 1, 1
            )
        figure.add_trace(go.Scatter(x=part["epoch"], y=part["validation"], **common), 1, 2)
    figure.update_yaxes(type="log", row=1, col=1)
    figure.update_xaxes(title_text="epoch")
    return figure


def metrics_at_k_plotly(metrics: dict[str, Any]) -> go.Figure:
    table = at_k_table(metrics)
    protocols = list(metrics["protocols"])
    styles = looks(list(metrics["models"]))
    figure = make_subplots(
        rows=len(AT_K_METRICS),
        cols=len(protocols),
        subplot_titles=[f"{m}@K, {p}" for m in AT_K_METRICS for p in protocols],
        shared_xaxes=True,
    )
    for row, metric in enumerate(AT_K_METRICS, start=1):
        for column, protocol in enumerate(protocols, start=1):
            part = table[(table["metric"] == metric) & (table["protocol"] == protocol)]
            for model, line in part.groupby("model", sort=False):
                error = {
                    "type": "data",
                    "array": line["high"] - line["value"],
                    "arrayminus": line["value"] - line["low"],
                }
                trace = go.Scatter(
                    x=line["k"],
                    y=line["value"],
                    error_y=error,
                    name=model,
                    legendgroup=model,
                    line=styles[model].plotly_line(),
                    showlegend=row == 1 and column == 1,
                )
                figure.add_trace(trace, row, column)
    figure.update_xaxes(title_text="K", row=len(AT_K_METRICS))
    return figure

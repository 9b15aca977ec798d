"""Collect every model's results into metrics.json, a readable report and a plot."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: the report is written by batch runs and CI
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from neurec.evaluation import parse_protocol

HEADLINE = ("HR@10", "NDCG@10", "Recall@10", "MRR")
PLOT_FILE = "metrics.png"


def build_metrics(
    dataset_stats: dict[str, Any], evaluation_params: dict[str, Any], **results: dict[str, Any]
) -> dict[str, Any]:
    """The metrics.json contract: {"dataset", "protocols", "models": {m: {...}}}."""
    protocols = {name: parse_protocol(name).describe() for name in evaluation_params["protocols"]}
    return {
        "dataset": dataset_stats,
        "protocols": {
            name: {"description": text, "seed": evaluation_params.get("seed")}
            for name, text in protocols.items()
        },
        "models": {
            name: {
                "train_seconds": round(result["train_seconds"], 3),
                "epochs": result["epochs"],
                "best_epoch": result["best_epoch"],
                "evaluation_seconds": round(result["evaluation_seconds"], 3),
                "metrics": result["metrics"],
            }
            for name, result in sorted(results.items())
        },
    }


def render_report(metrics: dict[str, Any]) -> str:
    """Markdown: data, protocol in words, one table per protocol, training cost."""
    stats = metrics["dataset"]
    split = stats.get("split", {})
    lines = [
        "# Results",
        "",
        "## Data",
        "",
        f"- users: {stats['users']}, items: {stats['items']}, "
        f"interactions: {stats['interactions_raw']} (density {stats['density']})",
        f"- split: {split.get('method', 'leave_one_out')}: train {stats['train_interactions']}, "
        f"validation {stats['validation_interactions']}, test {stats['test_interactions']} "
        f"({stats['test_users']} test users)",
        "- models are fit on train; validation NDCG@10 (full ranking) picks the epoch; test "
        "metrics use train + validation as each user's history, and history items are never "
        "ranked.",
        "",
        "## Protocols",
        "",
    ]
    for name, protocol in metrics["protocols"].items():
        seed = "" if name == "full" else f" (candidates drawn once, seed {protocol['seed']})"
        lines.append(f"- `{name}`: {protocol['description']}{seed}")
    models = metrics["models"]
    for protocol in metrics["protocols"]:
        lines += ["", f"## Test metrics: `{protocol}`", ""]
        extra = ("Coverage@10",) if protocol == "full" else ()
        columns = (*HEADLINE, *extra)
        lines.append("| model | " + " | ".join(columns) + " |")
        lines.append("|---|" + "---:|" * len(columns))
        ranked = sorted(
            models, key=lambda m: -models[m]["metrics"].get(protocol, {}).get("NDCG@10", -1.0)
        )
        for model in ranked:
            values = models[model]["metrics"].get(protocol, {})
            cells = [f"{values[c]:.4f}" if c in values else "–" for c in columns]
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Training cost",
        "",
        "| model | train seconds | epochs (best) | evaluation seconds |",
        "|---|---:|---:|---:|",
    ]
    for model, values in models.items():
        lines.append(
            f"| {model} | {values['train_seconds']:.1f} | {values['epochs']} "
            f"({values['best_epoch']}) | {values['evaluation_seconds']:.2f} |"
        )
    lines += ["", f"![NDCG@10 per model and protocol]({PLOT_FILE})", ""]
    return "\n".join(lines)


def plot_metrics(metrics: dict[str, Any]) -> Figure:
    """Grouped bars: NDCG@10 of each model under each protocol."""
    models = list(metrics["models"])
    protocols = list(metrics["protocols"])
    figure, axis = plt.subplots(figsize=(max(6, 1.2 * len(models) + 2), 4))
    width = 0.8 / max(1, len(protocols))
    for i, protocol in enumerate(protocols):
        heights = [
            metrics["models"][m]["metrics"].get(protocol, {}).get("NDCG@10", 0.0) for m in models
        ]
        positions = [j + i * width for j in range(len(models))]
        axis.bar(positions, heights, width=width, label=protocol)
    axis.set_xticks([j + width * (len(protocols) - 1) / 2 for j in range(len(models))])
    axis.set_xticklabels(models, rotation=30, ha="right")
    axis.set_ylabel("NDCG@10 (test)")
    axis.legend(fontsize="small")
    figure.tight_layout()
    return figure


def report(
    dataset_stats: dict[str, Any], evaluation_params: dict[str, Any], **results: dict[str, Any]
) -> tuple[dict[str, Any], str, Figure]:
    metrics = build_metrics(dataset_stats, evaluation_params, **results)
    return metrics, render_report(metrics), plot_metrics(metrics)

"""Collect every model's results into metrics.json, a readable report (Markdown and HTML)
and charts, with bootstrap intervals and significance tests against the best baseline."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import markdown
import pandas as pd
import plotly.graph_objects as go
from matplotlib.figure import Figure

from neurec.evaluation import EvaluationConfig
from neurec.models import registry
from neurec.models.base import build_config, check_positive
from neurec.pipelines.reporting import plots
from neurec.statistics import compare_with_baseline, metric_intervals
from neurec.training import SELECTION_METRIC

HEADLINE = ("HR@10", "NDCG@10", "Recall@10", "MRR")
BASELINE_FAMILY = "baselines"
# the PNG datasets' file names in conf/base/catalog.yml, which report.md links
PLOT_FILE = "metrics.png"
CURVES_FILE = "training_curves.png"
AT_K_FILE = "metrics_at_k.png"


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


def split_model_inputs(
    per_model: Mapping[str, Any],
) -> tuple[dict[str, dict[str, Any]], dict[str, pd.DataFrame]]:
    """``<model>__results`` / ``<model>__user_metrics`` node inputs, by model name."""
    parts: dict[str, dict[str, Any]] = {"results": {}, "user_metrics": {}}
    for key, value in per_model.items():
        model, _, kind = key.rpartition("__")
        parts[kind][model] = value
    return parts["results"], parts["user_metrics"]


def best_baseline(metrics: dict[str, Any], protocol: str) -> str | None:
    """The baseline-family model with the highest NDCG@10 under ``protocol``, if any."""
    baselines = [m for m, v in metrics["models"].items() if v["family"] == BASELINE_FAMILY]
    if not baselines:
        return None
    return max(baselines, key=lambda m: metrics["models"][m]["metrics"][protocol][SELECTION_METRIC])


def build_metrics(
    dataset_key: str,
    dataset_stats: dict[str, Any],
    evaluation_params: dict[str, Any],
    report_params: dict[str, Any],
    **per_model: Any,
) -> dict[str, Any]:
    """The metrics.json contract, {"dataset_key", "dataset", "protocols", "models": {m: ...}},
    plus per-epoch history, bootstrap intervals and the significance tests."""
    evaluation = build_config(EvaluationConfig, evaluation_params, "evaluation")
    settings = build_config(ReportConfig, report_params, "report")
    results, user_metrics = split_model_inputs(per_model)
    models = registry()
    metrics = {
        "dataset_key": dataset_key,
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
        "models": {
            name: {
                "family": models[name].family,
                "train_seconds": round(result["train_seconds"], 3),
                "epochs": result["epochs"],
                "best_epoch": result["best_epoch"],
                "evaluation_seconds": round(result["evaluation_seconds"], 3),
                "metrics": result["metrics"],
                "confidence_intervals": metric_intervals(
                    user_metrics[name],
                    settings.bootstrap_resamples,
                    settings.confidence,
                    settings.seed,
                ),
                "history": result["history"],
            }
            for name, result in sorted(results.items())
        },
    }
    metrics["significance"] = significance(metrics, user_metrics, settings)
    return metrics


def significance(
    metrics: dict[str, Any], user_metrics: dict[str, pd.DataFrame], settings: ReportConfig
) -> dict[str, Any]:
    """Every model against the best baseline (chosen under ``full``), per protocol."""
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
        return out
    for protocol in protocols:
        out["protocols"][protocol] = compare_with_baseline(
            user_metrics,
            baseline,
            protocol,
            SELECTION_METRIC,
            settings.permutation_resamples,
            settings.alpha,
            settings.seed,
        )
    return out


# --- report.md ----------------------------------------------------------------------------


def _with_interval(value: float, interval: list[float] | None) -> str:
    if interval is None:
        return f"{value:.4f}"
    return f"{value:.4f} ({interval[0]:.4f}–{interval[1]:.4f})"


def _data_section(metrics: dict[str, Any]) -> list[str]:
    stats = metrics["dataset"]
    split = stats.get("split", {})
    lines = [
        "## Data",
        "",
        f"- data set `{metrics['dataset_key']}` (data source, its settings and split)",
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
    return lines


def _metric_tables(metrics: dict[str, Any]) -> list[str]:
    models = metrics["models"]
    stats = metrics["statistics"]
    lines = [
        "",
        f"Each cell: the mean over test users and, in brackets, its "
        f"{stats['confidence']:.0%} bootstrap confidence interval ({stats['resamples']} "
        f"resamples of the test users, seed {stats['seed']}). Coverage@10, the share of the "
        "catalogue in anyone's top 10, is not a per-user mean: it has no interval.",
    ]
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
            intervals = models[model].get("confidence_intervals", {}).get(protocol, {})
            cells = [
                _with_interval(values[c], intervals.get(c)) if c in values else "–" for c in columns
            ]
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return lines


def _significance_section(metrics: dict[str, Any]) -> list[str]:
    test = metrics["significance"]
    baseline, metric, alpha = test["baseline"], test["metric"], test["alpha"]
    lines = ["", "## Significance", ""]
    if baseline is None:
        return [
            *lines,
            f"No model of family `{BASELINE_FAMILY}` in this run, so nothing to test against: "
            f"add one (e.g. `kedro run --pipeline={BASELINE_FAMILY}` and the model together).",
        ]
    compared = [m for m in metrics["models"] if m != baseline]
    lines.append(
        f"Each model against the best baseline, **{baseline}** (highest {metric} under "
        f"`{test['chosen_on']}` among the `{BASELINE_FAMILY}`), on per-user {metric}: a "
        f"paired permutation test ({test['resamples']} random sign flips of the per-user "
        f"differences, seed {test['seed']}; so no p-value is below 1/{test['resamples'] + 1}). "
        f"Testing {len(compared)} model(s) per protocol "
        "makes false alarms likelier, so p-values are Holm-corrected over them; a difference "
        f"is significant when the corrected p is below {alpha}."
    )
    if not compared:
        return [*lines, "", "The baseline is the only model in this run."]
    protocols = list(test["protocols"])
    lines += [
        "",
        "| model | " + " | ".join(f"`{p}`: difference (p Holm)" for p in protocols) + " |",
        "|---|" + "---:|" * len(protocols),
    ]
    for model in compared:
        cells = []
        for protocol in protocols:
            result = test["protocols"][protocol][model]
            star = " *" if result["significant"] else ""
            cells.append(f"{result['difference']:+.4f} ({result['p_holm']:.4f}){star}")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += ["", f"\\* significant at {alpha} after Holm's correction.", ""]
    for protocol in protocols:
        lines.append(f"- {_in_words(test['protocols'][protocol], baseline, protocol)}")
    return lines


def _in_words(results: dict[str, dict[str, Any]], baseline: str, protocol: str) -> str:
    def listed(models: list[str]) -> str:
        return ", ".join(
            f"{m} ({results[m]['difference']:+.4f}, p Holm {results[m]['p_holm']:.4f})"
            for m in models
        )

    better = [m for m, r in results.items() if r["significant"] and r["difference"] > 0]
    worse = [m for m, r in results.items() if r["significant"] and r["difference"] <= 0]
    same = [m for m, r in results.items() if not r["significant"]]
    parts = []
    if better:
        parts.append(f"significantly better than {baseline}: {listed(better)}")
    if worse:
        parts.append(f"significantly worse than {baseline}: {listed(worse)}")
    if same:
        parts.append(f"no significant difference from {baseline}: {listed(same)}")
    return f"`{protocol}`: " + "; ".join(parts) + "."


def render_report(metrics: dict[str, Any]) -> str:
    """Markdown: data, protocols, tables with intervals, significance, charts, cost."""
    lines = ["# Results", "", *_data_section(metrics), *_metric_tables(metrics)]
    lines += _significance_section(metrics)
    lines += [
        "",
        "## Training curves",
        "",
        f"Training loss and validation {SELECTION_METRIC} per epoch; a star marks the epoch "
        "kept (best on validation). Models fit in one pass are dotted lines.",
        "",
        f"![training curves]({CURVES_FILE})",
        "",
        "## Metrics at K",
        "",
        "HR@K and NDCG@K for every cut-off K, shaded: the bootstrap confidence intervals.",
        "",
        f"![metrics at K]({AT_K_FILE})",
        "",
        "## Training cost",
        "",
        "| model | train seconds | epochs (best) | evaluation seconds |",
        "|---|---:|---:|---:|",
    ]
    for model, values in metrics["models"].items():
        lines.append(
            f"| {model} | {values['train_seconds']:.1f} | {values['epochs']} "
            f"({values['best_epoch']}) | {values['evaluation_seconds']:.2f} |"
        )
    lines += ["", f"![NDCG@10 per model and protocol]({PLOT_FILE})", ""]
    return "\n".join(lines)


def render_html(report_markdown: str, images: Mapping[str, Figure]) -> str:
    """A self-contained page: the Markdown rendered, the linked PNGs embedded inline."""
    body = markdown.markdown(report_markdown, extensions=["tables"])
    for name, figure in images.items():
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100)
        encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
        body = body.replace(f'src="{name}"', f'src="data:image/png;base64,{encoded}"')
    title = html.escape(report_markdown.splitlines()[0].lstrip("# "))
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{title}</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.45}table{border-collapse:collapse;margin:1rem 0}"
    "th,td{border:1px solid #ccc;padding:.3rem .6rem}th{background:#f4f4f4}"
    "img{max-width:100%}code{background:#f4f4f4;padding:0 .2rem}"
)


def report(metrics: dict[str, Any]) -> tuple[str, str, Figure, Figure, Figure]:
    """report.md, report.html and the three PNG charts (bars, training curves, at K)."""
    images = {
        PLOT_FILE: plots.metrics_bar_figure(metrics),
        CURVES_FILE: plots.training_curves_figure(metrics),
        AT_K_FILE: plots.metrics_at_k_figure(metrics),
    }
    text = render_report(metrics)
    return text, render_html(text, images), *images.values()


def interactive_charts(metrics: dict[str, Any]) -> tuple[go.Figure, go.Figure]:
    """The same charts as plotly JSON, which kedro-viz previews."""
    return plots.training_curves_plotly(metrics), plots.metrics_at_k_plotly(metrics)

"""report.md and report.html from the metrics.json structure (``neurec.report.results``).

The words and layout are Jinja2 templates shipped in the package (``templates/``, loaded
through ``jinja2.PackageLoader``, so they work from an installed wheel as from a checkout):
``report.md.j2`` writes the Markdown; ``report.html.j2`` wraps that Markdown, rendered to
HTML with the PNG charts embedded, in one self-contained page. What a template would
compute awkwardly (rankings, verdicts, parameters that differ from the defaults) is
prepared here. No Kedro.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import io
from collections.abc import Mapping
from typing import Any

import jinja2
import markdown
from markupsafe import Markup
from matplotlib.figure import Figure

from neurec.models import registry
from neurec.report.archive import STUDY_CHARTS
from neurec.report.results import BASELINE_FAMILY, EARLY_STOPPING, EPOCH_BUDGET, ONE_PASS
from neurec.training import SELECTION_METRIC

HEADLINE = ("HR@10", "NDCG@10", "Recall@10", "MRR")
# the PNG datasets' file names in conf/base/catalog.yml, which report.md links
PLOT_FILE = "metrics.png"
CURVES_FILE = "training_curves.png"
AT_K_FILE = "metrics_at_k.png"
STOPPED = {
    ONE_PASS: "one pass",
    EARLY_STOPPING: "early stopping",
    EPOCH_BUDGET: "epoch budget",
}


@functools.cache
def environment() -> jinja2.Environment:
    templates = jinja2.Environment(
        loader=jinja2.PackageLoader("neurec.report", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",)),
        undefined=jinja2.StrictUndefined,  # a misspelt name fails the render, not blank text
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    templates.filters["when"] = when
    return templates


def with_interval(value: float, interval: list[float] | None) -> str:
    if interval is None:
        return f"{value:.4f}"
    return f"{value:.4f} ({interval[0]:.4f}–{interval[1]:.4f})"


def when(timestamp: str | None) -> str:
    """``2026-12-03T10:11:12+00:00`` -> ``2026-12-03 10:11``."""
    return "–" if not timestamp else timestamp[:16].replace("T", " ")


def metric_tables(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per protocol: the columns and one row of formatted cells per model, best first."""
    models = metrics["models"]
    tables = {}
    for protocol in metrics["protocols"]:
        columns = [*HEADLINE, *(("Coverage@10",) if protocol == "full" else ())]
        ranked = sorted(
            models, key=lambda m: -models[m]["metrics"].get(protocol, {}).get("NDCG@10", -1.0)
        )
        rows = []
        for model in ranked:
            values = models[model]["metrics"].get(protocol, {})
            intervals = models[model]["confidence_intervals"].get(protocol, {})
            rows.append(
                (
                    model,
                    [
                        with_interval(values[c], intervals.get(c)) if c in values else "–"
                        for c in columns
                    ],
                )
            )
        tables[protocol] = {"columns": columns, "rows": rows}
    return tables


def significance_table(test: Mapping[str, Any], compared: list[str]) -> dict[str, Any]:
    """Columns (protocols) and per compared model its difference and Holm p per protocol,
    starred when significant ("–" where it has no results under that protocol)."""
    rows = []
    for model in compared:
        cells = []
        for results in test["protocols"].values():
            result = results.get(model)
            cells.append(
                "–"
                if result is None
                else f"{result['difference']:+.4f} ({result['p_holm']:.4f})"
                + (" *" if result["significant"] else "")
            )
        rows.append((model, cells))
    columns = [f"`{protocol}`: difference (p Holm)" for protocol in test["protocols"]]
    return {"columns": columns, "rows": rows}


def verdicts(results: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, list[str]]]:
    """The compared models grouped by outcome, for the sentence under the table."""
    groups = [
        (
            "significantly better than",
            [m for m, r in results.items() if r["significant"] and r["difference"] > 0],
        ),
        (
            "significantly worse than",
            [m for m, r in results.items() if r["significant"] and r["difference"] <= 0],
        ),
        ("no significant difference from", [m for m, r in results.items() if not r["significant"]]),
    ]
    return [(words, models) for words, models in groups if models]


def changed_parameters(model: str, parameters: Mapping[str, Any]) -> str:
    """``epochs=30, max_len=50``: the parameters set otherwise than the config's defaults
    (all of them are in metrics.json), nested blocks flattened with dots."""
    defaults = _flat(dataclasses.asdict(registry()[model].config_class()))
    changed = [
        f"{key}={value}"
        for key, value in _flat(parameters).items()
        if defaults.get(key, object()) != value
    ]
    return ", ".join(changed) or "defaults"


def _flat(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:  # JSON read back gives lists where the config has tuples
            out[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return out


def markdown_report(metrics: dict[str, Any]) -> str:
    """report.md: data, protocols, models and their runs, tables with intervals,
    significance, charts, cost."""
    models = metrics["models"]
    baseline = metrics["significance"]["baseline"]
    compared = [m for m in models if baseline is not None and m != baseline]
    view = {
        "earlier": [m for m, values in models.items() if not values["this_run"]],
        "parameters": {
            m: changed_parameters(m, values["parameters"]) for m, values in models.items()
        },
        "tables": metric_tables(metrics),
        "compared": compared,
        "significance": significance_table(metrics["significance"], compared),
        "verdicts": {
            protocol: verdicts(results)
            for protocol, results in metrics["significance"]["protocols"].items()
        },
        "budget_stopped": [m for m, values in models.items() if values["best_epoch_is_last"]],
    }
    return (
        environment()
        .get_template("report.md.j2")
        .render(
            m=metrics,
            view=view,
            baselines=BASELINE_FAMILY,
            metric=SELECTION_METRIC,
            stopped=STOPPED,
            files={"bars": PLOT_FILE, "curves": CURVES_FILE, "at_k": AT_K_FILE},
            chart_titles=STUDY_CHARTS,
        )
    )


def html_page(report_markdown: str, images: Mapping[str, Figure | bytes]) -> str:
    """A self-contained page: the Markdown rendered, the linked PNGs (figures, or a PNG
    file's bytes) embedded inline."""
    body = markdown.markdown(report_markdown, extensions=["tables"])
    for name, image in images.items():
        if isinstance(image, Figure):
            buffer = io.BytesIO()
            image.savefig(buffer, format="png", dpi=100)
            image = buffer.getvalue()
        encoded = base64.b64encode(image).decode("ascii")
        body = body.replace(f'src="{name}"', f'src="data:image/png;base64,{encoded}"')
    return (
        environment()
        .get_template("report.html.j2")
        .render(title=report_markdown.splitlines()[0].lstrip("# "), body=Markup(body))
    )

"""The results every earlier run saved, so that a report keeps the models it did not train.

The evaluate node writes ``<model>_results`` (JSON) and ``<model>_user_metrics``
(parquet) as versioned datasets: each run adds ``<file>/<version>/<file name>`` under the
catalog's path, both files under the run's one save version. ``ResultsArchive`` lists
those versions for path patterns holding one ``*`` for the model name (the catalog's
factory paths with ``*`` for ``{model}``, so a layout that puts a data-set key in the
folders, or the model name in a folder, works the same) and picks, per model, the newest
version that a given test accepts (the same split and candidate draw:
``neurec.report.results.comparable_to``). ``StudyArchive`` lists the tuning studies
(``neurec.tuning``) saved for the data set, each a folder ``<study>/`` holding
``study.json`` (its summary) and Optuna's charts. Plain Python; no Kedro.
"""

from __future__ import annotations

import glob
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from neurec.models import registry
from neurec.report.results import ModelRun, comparable_to

logger = logging.getLogger(__name__)
PLACEHOLDER = "*"  # the model name in a path pattern
# a tuning study's folder: its summary, and Optuna's charts (PNG) by name
STUDY_FILE = "study.json"
STUDY_CHARTS = {
    "optimisation_history": "optimisation history",
    "param_importances": "parameter importance",
}


@dataclass(frozen=True)
class ResultsArchive:
    """Saved versions of ``results`` and ``user_metrics``, paths with ``*`` for the model."""

    results: str
    user_metrics: str

    def __post_init__(self) -> None:
        for pattern in (self.results, self.user_metrics):
            if pattern.count(PLACEHOLDER) != 1:
                raise ValueError(
                    f"results path {pattern!r}: expected one '{PLACEHOLDER}' (the model name)"
                )

    def models(self) -> list[str]:
        """Every model with at least one saved version of its results."""
        head, _, tail = self.results.partition(PLACEHOLDER)
        name = re.compile(re.escape(head) + r"(?P<model>[^/]+?)" + re.escape(tail))
        found = (name.fullmatch(path) for path in glob.glob(self.results))
        return sorted({match["model"] for match in found if match})

    def versions(self, model: str) -> list[str]:
        """The saved versions of ``model``'s results, newest first (Kedro's version names,
        UTC timestamps, sort in time order)."""
        folder = Path(self.results.replace(PLACEHOLDER, model))
        if not folder.is_dir():
            return []
        return sorted(
            (p.name for p in folder.iterdir() if (p / folder.name).is_file()), reverse=True
        )

    def latest(self, model: str, accept: Callable[[Mapping[str, Any]], bool]) -> ModelRun | None:
        """The newest saved run of ``model`` whose results ``accept`` takes and whose per-user
        metrics were saved with them (versions older than that are skipped), if any."""
        results = Path(self.results.replace(PLACEHOLDER, model))
        per_user = Path(self.user_metrics.replace(PLACEHOLDER, model))
        for version in self.versions(model):
            result = json.loads((results / version / results.name).read_text())
            table = per_user / version / per_user.name
            if accept(result) and table.is_file():
                logger.debug("%s: results of version %s", model, version)
                return ModelRun(result, pd.read_parquet(table), this_run=False)
        return None


def with_earlier_runs(current: dict[str, ModelRun], archive: ResultsArchive) -> dict[str, ModelRun]:
    """This run's models, and the latest saved results of every other registered model
    comparable to them (same split and candidates), so one model's run keeps the rest."""
    keys = {comparable_to(run.result) for run in current.values()}
    if len(keys) != 1:
        raise ValueError(f"this run's models were evaluated on different splits: {keys}")
    key = keys.pop()
    runs = dict(current)
    if key[0] is None:  # no fingerprint to compare: nothing earlier is known to be comparable
        return runs
    for model in archive.models():
        if model in runs:
            continue
        if model not in registry():
            logger.info("report: skipping saved results of '%s', not a registered model", model)
            continue
        run = archive.latest(model, lambda result: comparable_to(result) == key)
        if run is not None:
            runs[model] = run
    earlier = sorted(set(runs) - set(current))
    if earlier:
        logger.info("report: with the latest results on this split of %s", ", ".join(earlier))
    return runs


@dataclass(frozen=True)
class StudyArchive:
    """The tuning studies saved in ``folder`` (``<study>/study.json`` and its charts)."""

    folder: str

    def studies(self, split_fingerprint: str | None) -> list[dict[str, Any]]:
        """Each study's summary tuned on ``split_fingerprint``, with ``charts``: the absolute
        paths of its chart files that exist, by name (``STUDY_CHARTS``); by study name."""
        found = []
        for path in sorted(Path(self.folder).resolve().glob(f"*/{STUDY_FILE}")):
            summary = json.loads(path.read_text())
            if summary.get("split_fingerprint") != split_fingerprint:
                continue
            charts = {
                chart: (path.parent / f"{chart}.png").as_posix()
                for chart in STUDY_CHARTS
                if (path.parent / f"{chart}.png").is_file()
            }
            found.append({**summary, "charts": charts})
        return found

"""The end of every run says where the report is (a path to open), also when the run wrote
none (``recommend``): the one an earlier run wrote, or the command that writes one."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

REPORT_FILES = ("report_html", "report_markdown")  # catalog entries, the page first
logger = logging.getLogger(__name__)


def report_paths(catalog: Any) -> list[Path]:
    """Where the catalog keeps report.html and report.md, absolute."""
    paths = []
    for name in REPORT_FILES:
        filepath = getattr(catalog.get(name), "_filepath", None)
        if filepath is not None:
            paths.append(Path(str(filepath)).resolve())
    return paths


def report_location(paths: list[Path], written: bool) -> str:
    if not paths:
        return "report: the catalog has no report files"
    where = f"{paths[0]}" + "".join(f" (and {p.name} beside it)" for p in paths[1:])
    if written:
        return f"report: {where}"
    if paths[0].exists():
        return f"report (written by an earlier run): {where}"
    return f"no report yet: `kedro run` (or `kedro run --pipelines=<model>`) writes {paths[0]}"


class ReportLocationHooks:
    @hook_impl(trylast=True)  # the last line of the run's log
    def after_pipeline_run(self, pipeline: Any, catalog: Any) -> None:
        written = REPORT_FILES[0] in pipeline.datasets()
        logger.info(report_location(report_paths(catalog), written))

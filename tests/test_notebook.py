"""notebooks/walkthrough.ipynb runs top to bottom after a small `kedro run`."""

import os
import shutil

import nbformat
import yaml
from nbclient import NotebookClient

from tests.conftest import PROJECT_ROOT
from tests.test_pipeline import SMALL_DATA, kedro_run

NOTEBOOK = PROJECT_ROOT / "notebooks" / "walkthrough.ipynb"


def test_walkthrough_notebook_executes_on_a_fresh_run(project_copy, monkeypatch):
    # the notebook's own session reads the project's configuration, so the small data set
    # is configured there (as a user would), not passed to this run alone
    (project_copy / "conf" / "local").mkdir(exist_ok=True)
    (project_copy / "conf" / "local" / "parameters.yml").write_text(yaml.safe_dump(SMALL_DATA))
    kedro_run(project_copy, "baselines")
    shutil.copytree(PROJECT_ROOT / "notebooks", project_copy / "notebooks")
    # the kernel is a new process: it must import this checkout's code, offline
    path = os.pathsep.join(filter(None, [str(PROJECT_ROOT / "src"), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.setenv("KEDRO_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(project_copy / "notebooks" / NOTEBOOK.name, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(project_copy / "notebooks")}},
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on failure
    printed = "".join(
        output.get("text", "")
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream"
    )
    assert "unknown ids: ['not-an-item']" in printed
    assert "popularity - cold start" in printed

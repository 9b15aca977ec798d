"""kedro-viz as a person sees it: `kedro viz run` served and rendered in headless Chromium,
and the static export of `kedro viz build`."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path

import pytest

from neurec.models import registry

SRC = Path(__file__).resolve().parents[1] / "src"
STAGES = {"ingest", "split", "report"}
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def kedro_env() -> dict[str, str]:
    """This checkout's code (the subprocess does not get pytest's pythonpath); no telemetry."""
    path = os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))
    return {
        **os.environ,
        "PYTHONPATH": path,
        "KEDRO_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }


@contextmanager
def process_group(command: list[str], cwd: Path, log: Path) -> Iterator[subprocess.Popen]:
    """Run ``command`` in its own process group and end the whole group on the way out."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=kedro_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(process.pid, sig)
                    process.wait(timeout=10)
                    break
                except ProcessLookupError:
                    break
                except subprocess.TimeoutExpired:
                    continue


def free_port() -> int:
    """A free port kedro-viz accepts: it refuses ports above 49151, where the OS's own
    picks (port 0) land, so try a few below the usual ephemeral range instead."""
    for port in random.sample(range(20000, 32768), 20):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.fail("no free port in 20000-32767")


def wait_for_page(url: str, process: subprocess.Popen, log: Path, timeout: float = 50) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"kedro viz run exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"kedro viz run did not answer {url} within {timeout}s:\n{log.read_text()}")


@pytest.fixture
def chromium() -> str:
    """Debian's chromium; .ci/run installs it, a machine without it skips the page test."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium is not installed and .ci/run could not install it")
    return found


def dump_dom(browser: str, url: str, tmp_path: Path) -> str:
    """The page's DOM after its scripts have run (stderr noise is harmless to the parser)."""
    profile, log = tmp_path / "chromium-profile", tmp_path / "chromium.log"
    command = [
        browser,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        "--window-size=1600,1000",
        "--virtual-time-budget=15000",
        "--dump-dom",
        url,
    ]
    with process_group(command, tmp_path, log) as browser:
        browser.wait(timeout=60)
    return log.read_text(errors="replace")


class FlowchartNodes(HTMLParser):
    """(type, full name) of each node the flowchart SVG draws, and how many edges."""

    def __init__(self) -> None:
        super().__init__()
        self.nodes: set[tuple[str, str]] = set()
        self.edges = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if tag == "g" and "pipeline-node" in classes:
            self.nodes.add((attributes["data-node-type"], attributes["data-node-fullname"]))
        elif "pipeline-edge" in classes:
            self.edges += 1


@pytest.fixture
def viz_server(project_copy, tmp_path) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    command = [sys.executable, "-m", "kedro", "viz", "run", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--no-browser"]  # autoreload is off unless asked for
    log = tmp_path / "viz.log"
    with process_group(command, project_copy, log) as server:
        wait_for_page(url + "api/main", server, log)
        yield url


@pytest.mark.slow
def test_the_viz_page_draws_every_stage_and_every_model(chromium, viz_server, tmp_path):
    dom = dump_dom(chromium, viz_server, tmp_path)
    page = FlowchartNodes()
    page.feed(dom)
    tasks = {name for kind, name in page.nodes if kind == "task"}
    models = {name for kind, name in page.nodes if kind == "modularPipeline"}
    assert tasks >= STAGES, f"flowchart tasks: {sorted(tasks)}"
    assert set(registry()) <= models, f"flowchart model namespaces: {sorted(models)}"
    assert page.edges >= len(tasks) + len(models)  # the nodes are connected, not just listed
    assert "heapanalytics" not in dom  # kedro-viz adds analytics only with .telemetry consent

    with urllib.request.urlopen(viz_server + "api/main", timeout=10) as response:
        graph = json.load(response)  # the data the page drew from
    assert set(registry()) <= set(graph["modular_pipelines"])


@pytest.mark.slow
def test_viz_build_exports_the_dag_with_every_model(project_copy, tmp_path):
    command = [sys.executable, "-m", "kedro", "viz", "build"]
    with process_group(command, project_copy, tmp_path / "build.log") as build:
        assert build.wait(timeout=60) == 0, (tmp_path / "build.log").read_text()
    export = project_copy / "build"
    assert (export / "index.html").is_file()
    graph = json.loads((export / "api" / "main").read_text())
    assert set(registry()) <= set(graph["modular_pipelines"])
    assert {node["name"] for node in graph["nodes"] if node["type"] == "task"} >= STAGES
    for name in registry():  # every model's own pipeline page is exported too
        assert (export / "api" / "pipelines" / name).is_file()

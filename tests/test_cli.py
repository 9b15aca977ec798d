"""`kedro run` / `python -m neurec`: an expected error is one short message, a bug a traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from kedro.framework.cli.project import run as kedro_run
from kedro.io import DatasetError

import neurec
from neurec.cli import TRACEBACK_VARIABLE, run
from neurec.errors import ConfigError, DataError

BAD_SPLIT = ["--pipelines=ease", "--params", "split.method=nosuch"]
MESSAGE = "parameter split.method: expected one of ('leave_one_out'"


def run_project(project: Path, command: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(Path(neurec.__file__).resolve().parents[1]))
    env.pop(TRACEBACK_VARIABLE, None)
    return subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=300
    )


def test_kedro_run_prints_an_expected_error_in_two_lines(project_copy):
    kedro = Path(sys.executable).with_name("kedro")
    done = run_project(project_copy, [str(kedro), "run", *BAD_SPLIT])
    assert done.returncode == 1
    assert f"Error: {MESSAGE}" in done.stderr
    assert len(done.stderr.splitlines()) < 15, done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_a_mistyped_env_stops_with_kedros_message_naming_the_folder(project_copy):
    kedro = Path(sys.executable).with_name("kedro")
    done = run_project(project_copy, [str(kedro), "run", "--env", "nosuch", "--pipelines=ease"])
    assert done.returncode == 1
    missing = project_copy / "conf" / "nosuch"
    assert "Error: Given configuration path either does not exist or" in done.stderr
    assert f"is not a valid directory: {missing}\n" in done.stderr
    output = done.stdout + done.stderr
    assert "Traceback" not in output and "MlflowException" not in output  # no file-store error


def test_python_m_neurec_verbose_shows_the_traceback(project_copy):
    done = run_project(project_copy, [sys.executable, "-m", "neurec", "--verbose", *BAD_SPLIT])
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "check_parameters" in done.stderr
    assert f"ConfigError: {MESSAGE}" in done.stderr


def wrapped_data_error() -> DatasetError:
    """What Kedro raises when a dataset's loader raises a DataError."""
    try:
        raise DataError("file ratings.csv: column 'user' is missing")
    except DataError as error:
        try:
            raise DatasetError("Failed while loading data from dataset ratings.") from error
        except DatasetError as wrapped:
            return wrapped


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (ConfigError("parameter ease.l2: must be >= 0, got -1"), "parameter ease.l2: must be"),
        (wrapped_data_error(), "Failed while loading data from dataset ratings."),
    ],
)
def test_an_expected_error_ends_the_command_with_its_message(monkeypatch, error, message):
    def failing_run(**options):
        raise error

    monkeypatch.setattr(kedro_run, "callback", failing_run)
    monkeypatch.delenv(TRACEBACK_VARIABLE, raising=False)
    result = CliRunner().invoke(run, ["--pipelines=ease"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {message}")
    assert "--verbose" in result.stderr


@pytest.mark.parametrize(
    ("error", "arguments", "variable"),
    [
        (RuntimeError("a bug"), [], None),
        (ConfigError("parameter ease.l2: must be >= 0"), ["--verbose"], None),
        (ConfigError("parameter ease.l2: must be >= 0"), ["-v"], None),
        (ConfigError("parameter ease.l2: must be >= 0"), [], "1"),
    ],
)
def test_a_bug_or_a_requested_traceback_propagates(monkeypatch, error, arguments, variable):
    def failing_run(**options):
        raise error

    monkeypatch.setattr(kedro_run, "callback", failing_run)
    if variable is None:
        monkeypatch.delenv(TRACEBACK_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(TRACEBACK_VARIABLE, variable)
    result = CliRunner().invoke(run, ["--pipelines=ease", *arguments])
    assert result.exception is error  # raised on: Kedro's rich traceback prints it
    assert "Error:" not in result.stderr


def test_run_passes_kedros_options_through(monkeypatch):
    received = {}
    monkeypatch.setattr(kedro_run, "callback", lambda **options: received.update(options))
    result = CliRunner().invoke(run, ["--pipelines=ease", "--env=benchmark", "--params", "a=1"])
    assert result.exit_code == 0, result.output
    assert received["pipelines"] == ["ease"] and received["env"] == "benchmark"
    assert received["params"] == {"a": 1}

"""Nothing phones home: a default-configured `kedro run` contacts no host beyond this machine."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import neurec
from tests.test_pipeline import dataset_folder

# A sitecustomize module (imported by every Python process that has it on its path, before any
# other code) that records each name looked up and each address connected to, and refuses the
# non-local ones, so that a failing test does not actually leave the machine.
RECORDER = """
import os
import socket

LOCAL = ("localhost", "127.0.0.1", "::1", "", None)


def _record(kind, target):
    with open(os.environ["NEUREC_NETWORK_LOG"], "a") as log:
        log.write(f"{kind} {target!r}\\n")


def _check(kind, host, target):
    if host in LOCAL or str(host).startswith("127."):
        return
    _record(kind, target)
    raise socket.gaierror(f"test forbids network access to {target!r}")


def _wrap(name, host_of):
    original = getattr(socket, name)

    def guarded(*args, **kwargs):
        _check(name, host_of(args), args[0] if args else None)
        return original(*args, **kwargs)

    setattr(socket, name, guarded)


for _name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex"):
    _wrap(_name, lambda args: args[0] if args else None)
_connect = socket.socket.connect


def _guarded_connect(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        _check("connect", address[0], address)
    return _connect(sock, address)


socket.socket.connect = _guarded_connect
"""

# Variables that make MLflow switch its telemetry off by itself (mlflow/telemetry/utils.py,
# `is_telemetry_disabled`: CI and test runners, DO_NOT_TRACK). A user's shell has none of them,
# so neither does the child: only the project's own setting may keep the run quiet.
QUIETING = (
    "MLFLOW_DISABLE_TELEMETRY",
    "DO_NOT_TRACK",
    "PYTEST_CURRENT_TEST",
    "GITHUB_ACTIONS",
    "CI",
    "CIRCLECI",
    "GITLAB_CI",
    "JENKINS_URL",
    "TRAVIS",
    "TF_BUILD",
    "BITBUCKET_BUILD_NUMBER",
    "CODEBUILD_BUILD_ARN",
    "BUILDKITE",
    "TEAMCITY_VERSION",
    "CLOUD_RUN_EXECUTION",
    "RUNBOT_HOST_URL",
    "RUNBOT_BUILD_NAME",
    "RUNBOT_WORKER_ID",
)


@pytest.fixture
def recording(tmp_path):
    """(environment for a child process, its log of non-local hosts contacted)."""
    folder = tmp_path / "recorder"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(RECORDER)
    log = tmp_path / "network.log"
    source = Path(neurec.__file__).resolve().parents[1]
    env = {name: value for name, value in os.environ.items() if name not in QUIETING}
    env.update(PYTHONPATH=os.pathsep.join([str(folder), str(source)]), NEUREC_NETWORK_LOG=str(log))
    return env, log


def test_the_recorder_sees_mlflow_telemetry_when_nothing_turns_it_off(recording, project_copy):
    """Control: else the test below would pass on a machine where MLflow is quiet anyway."""
    env, log = recording
    # MLflow fetches its telemetry config when it records its first event (here: a new
    # experiment), in a thread: wait for it.
    tracked = (
        "import pathlib, sys, time\n"
        "import mlflow\n"
        "mlflow.MlflowClient('sqlite:///mlflow.db').create_experiment('control')\n"
        "for _ in range(600):\n"
        "    if pathlib.Path(sys.argv[1]).exists(): break\n"
        "    time.sleep(0.05)\n"
    )
    subprocess.run(
        [sys.executable, "-c", tracked, str(log)], cwd=project_copy, env=env, timeout=120
    )
    assert log.exists() and "mlflow-telemetry" in log.read_text()


def test_a_default_kedro_run_contacts_no_host(recording, project_copy):
    env, log = recording
    kedro = Path(sys.executable).with_name("kedro")
    small = "data.synthetic.n_users=120,data.synthetic.n_items=250"
    done = subprocess.run(
        [str(kedro), "run", "--pipelines=ease", "--params", small],
        cwd=project_copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    small_params = {"data": {"synthetic": {"n_users": 120, "n_items": 250}}}
    reporting = dataset_folder(project_copy, "08_reporting", small_params)
    assert (reporting / "metrics.json").exists()
    assert not log.exists(), log.read_text()

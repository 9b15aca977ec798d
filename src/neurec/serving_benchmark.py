"""Latency of served models: p50/p99 of HTTP requests to ``mlflow models serve``.

A benchmark, not a test. In a temporary copy of the project it trains each model with
``kedro run --pipelines=<model>`` on the given data (which logs and registers it,
``neurec.serving``), serves ``models:/neurec-<model>/latest`` on 127.0.0.1 and times
requests of one history and of ``--batch`` histories (the users' train + validation
histories, source ids, k=10), each a fresh connection as a ``curl`` call would be::

    python -m neurec.serving_benchmark --path ../shared/data/ml-100k/u.data \\
        --models ease sasrec --out benchmarks/results/serving_ml100k.json

Training budgets are the project's ``conf/base`` ones plus ``--params`` (latency does not
depend on how long a model trained). ``--threads`` (default ``auto``, as the ``threads``
block: the free cores) fixes torch's threads for the training runs (``threads.torch``) and
the server (``OMP_NUM_THREADS``, which torch reads when it starts); the result records it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

import neurec
from neurec.dataset_key import project_dataset_key
from neurec.datasets import SplitDataset
from neurec.distributed import parse_params
from neurec.threads import AUTO, ThreadsConfig, resolve_threads

START_SECONDS = 90


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_env(tracking_uri: str, threads: int | None = None) -> dict[str, str]:
    """The environment of ``mlflow models serve``: this project's store, neurec and
    interpreter, and ``threads`` torch threads (None: as this environment says)."""
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_DISABLE_TELEMETRY": "true",  # the mlflow CLI imports mlflow before neurec
        "PYTHONPATH": str(Path(neurec.__file__).resolve().parents[1]),  # this neurec
        # MLflow starts its server as `uvicorn` from PATH: this interpreter's environment's
        # one, also when that environment is not activated (`.venv/bin/python -m pytest`)
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


@contextmanager
def served(
    model_uri: str, tracking_uri: str, cwd: Path, log: Path, threads: int | None = None
) -> Iterator[str]:
    """``mlflow models serve`` of ``model_uri`` on a free port of 127.0.0.1 with ``threads``
    torch threads, as its own process group; yields the base URL once ``/ping`` answers (at
    most 90 s), and stops the whole group (SIGTERM, SIGKILL after 15 s) on exit."""
    port = free_port()
    env = server_env(tracking_uri, threads)
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri]
    command += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while not answers_ping(url):
            if process.poll() is not None:
                raise RuntimeError(f"mlflow models serve exited {process.returncode}:\n{tail(log)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no answer on {url}/ping in {START_SECONDS} s:\n{tail(log)}")
            time.sleep(0.3)
        yield url
    finally:
        stop_group(process)


def tail(log: Path, chars: int = 4000) -> str:
    return log.read_text(errors="replace")[-chars:]


def answers_ping(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM the process group (uvicorn's workers too), SIGKILL after 15 s."""
    for sent in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sent)
        except ProcessLookupError:  # the whole group has already ended
            break
        try:
            process.wait(timeout=15)
            break
        except subprocess.TimeoutExpired:
            continue
    process.wait()


def post(url: str, body: object, timeout: float = 60) -> tuple[int, dict]:
    """POST ``body`` as JSON to ``<url>/invocations``: (HTTP status, decoded answer)."""
    request = urllib.request.Request(
        f"{url}/invocations",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def histories(project: Path, params: str) -> list[list[int]]:
    """Every user's train + validation history as source item ids, in time order, in the
    split of the data set ``kedro run --params <params>`` works on."""
    key = project_dataset_key(project, params=parse_params(params))
    split = SplitDataset(str(project / "data" / "05_model_input" / key / "split")).load()
    items = split.item_index["source_id"].to_numpy()
    history = split.evaluation.history
    users = np.flatnonzero(history.lengths() > 0)
    return [items[history.of(user)].tolist() for user in users]


def timed(url: str, bodies: list[dict]) -> dict[str, float]:
    seconds = []
    for body in bodies:
        start = time.perf_counter()
        status, answer = post(url, body)
        seconds.append(time.perf_counter() - start)
        if status != 200:
            raise RuntimeError(f"request failed ({status}): {answer}")
    milliseconds = np.asarray(seconds) * 1000
    return {
        "requests": len(bodies),
        "p50_ms": round(float(np.percentile(milliseconds, 50)), 2),
        "p99_ms": round(float(np.percentile(milliseconds, 99)), 2),
        "mean_ms": round(float(milliseconds.mean()), 2),
    }


def train(project: Path, model: str, params: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(neurec.__file__).resolve().parents[1])}
    env.pop("MLFLOW_TRACKING_URI", None)  # the copy's own store
    subprocess.run(
        [sys.executable, "-m", "kedro", "run", f"--pipelines={model}", "--params", params],
        cwd=project, env=env, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip


def thread_count(value: str) -> int:
    """``--threads``: ``auto`` (the free cores now, as the ``threads`` block) or a count."""
    if value != AUTO and not (value.isdigit() and int(value) > 0):
        raise argparse.ArgumentTypeError(f"expected '{AUTO}' or a positive integer, got {value!r}")
    return resolve_threads(ThreadsConfig(AUTO if value == AUTO else int(value)))


def training_params(source: str, path: str, extra: str, threads: int) -> str:
    """``kedro run --params`` of the training runs: the data, ``threads``, then ``extra``."""
    pairs = (f"data.source={source}", f"data.path={Path(path).resolve()}",
             f"threads.torch={threads}", extra)  # fmt: skip
    return ",".join(p for p in pairs if p)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m neurec.serving_benchmark", description=__doc__)
    parser.add_argument(
        "--project", type=Path, default=Path("."), help="project to copy conf/ from"
    )
    parser.add_argument("--source", default="movielens")
    parser.add_argument("--path", required=True, help="data file (data.path)")
    parser.add_argument("--models", nargs="+", default=["ease", "sasrec"])
    parser.add_argument("--params", default="", help="extra kedro --params, e.g. sasrec.epochs=3")
    parser.add_argument("--requests", type=int, default=200, help="single-history requests")
    parser.add_argument("--batches", type=int, default=30, help="requests of --batch histories")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=thread_count, default=AUTO, help="torch threads: auto or a count"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    threads = args.threads  # resolved once: the training runs and the server use the same
    params = training_params(args.source, args.path, args.params, threads)
    result: dict = {
        "data": str(args.path),
        "params": params,
        "k": args.k,
        "threads": threads,
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "models": {},
    }
    with tempfile.TemporaryDirectory(prefix="neurec-serving-") as folder:
        project = Path(folder)
        shutil.copytree(args.project / "conf", project / "conf")
        for name in ("pyproject.toml", ".telemetry"):
            shutil.copy(args.project / name, project / name)
        (project / "src").mkdir()
        rng = np.random.default_rng(args.seed)
        for model in args.models:
            train(project, model, params)
            every = histories(project, params)
            pick = rng.integers(len(every), size=args.requests + args.batches * args.batch)
            rows = [{"history": every[i], "k": args.k} for i in pick]
            singles = [{"dataframe_records": [row]} for row in rows[: args.requests]]
            rest = rows[args.requests :]
            batches = [
                {"dataframe_records": rest[start : start + args.batch]}
                for start in range(0, len(rest), args.batch)
            ]
            uri = f"sqlite:///{project / 'mlflow.db'}"
            log = project / f"serve-{model}.log"
            with served(f"models:/neurec-{model}/latest", uri, project, log, threads) as url:
                post(url, singles[0])  # warm up
                result["models"][model] = {
                    "single": timed(url, singles),
                    f"batch_{args.batch}": timed(url, batches),
                }
            print(model, json.dumps(result["models"][model]), flush=True)
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()

"""Wall time of the default `kedro run` per torch thread count, alone and beside a busy core.

    python benchmarks/default_run_threads.py --threads 1 2 auto \\
        --out benchmarks/results/default_run_threads.json

Each run is a fresh copy of the project (conf/, pyproject.toml, .telemetry; this checkout's
`src/` on PYTHONPATH) with a new MLflow store, as a new user's first `kedro run` would be,
timed from start to exit, with `--params threads.torch=<n>`. Condition `alone` runs it by
itself; `busy` first starts one process that spins on a core and lets it run `--warmup`
seconds (the load average, which `threads.torch: auto` reads, follows with a lag of about a
minute), then times the run while it keeps spinning. Every run's metrics are compared with
the first one's: the thread count must change the time, not the results.

A benchmark, not a test; figures are only clean with nothing else running (check
`load_average_before` in the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPIN = "while True: pass"


def project_copy(folder: Path) -> Path:
    shutil.copytree(ROOT / "conf", folder / "conf")
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(ROOT / name, folder / name)
    (folder / "src").mkdir()
    return folder


def timed_run(threads: str, pipeline: str, params: str) -> dict:
    """One `kedro run` in a fresh project copy: wall seconds, threads used, metrics."""
    with tempfile.TemporaryDirectory(prefix="neurec-threads-") as folder:
        project = project_copy(Path(folder))
        overrides = ",".join(p for p in (f"threads.torch={threads}", params) if p)
        command = [sys.executable, "-m", "kedro", "run", f"--pipelines={pipeline}"]
        command += ["--params", overrides]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        env.pop("MLFLOW_TRACKING_URI", None)  # the copy's own store
        load = [round(x, 2) for x in os.getloadavg()]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"kedro run failed ({done.returncode}):\n{done.stderr[-3000:]}")
        used = re.search(r"torch threads: (\d+) intra-op", done.stdout + done.stderr)
        (report,) = (project / "data/08_reporting").glob("*/metrics.json")  # <data set>/
        metrics = json.loads(report.read_text())
        return {
            "threads_setting": threads,
            "torch_threads": int(used.group(1)) if used else None,
            "wall_seconds": round(seconds, 1),
            "load_average_before": load,
            "metrics": {
                name: result["metrics"] for name, result in sorted(metrics["models"].items())
            },
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", nargs="+", default=["1", "2", "auto"])
    parser.add_argument("--conditions", nargs="+", default=["alone", "busy"])
    parser.add_argument("--pipeline", default="__default__")
    parser.add_argument("--params", default="", help="extra kedro --params")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds the spinner runs first")
    parser.add_argument("--label", default="", help="e.g. 'under load from other sessions'")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    runs = []
    for condition in args.conditions:
        for threads in args.threads:
            spinner = None
            if condition == "busy":
                spinner = subprocess.Popen([sys.executable, "-c", SPIN])
                time.sleep(args.warmup)
            try:
                run = {"condition": condition, **timed_run(threads, args.pipeline, args.params)}
            finally:
                if spinner is not None:
                    spinner.kill()
                    spinner.wait()
            run["same_metrics_as_first"] = not runs or run["metrics"] == runs[0]["metrics"]
            runs.append(run)
            print(
                f"{condition:5} threads.torch={threads:4} -> {run['torch_threads']} threads: "
                f"{run['wall_seconds']:7.1f} s (load before {run['load_average_before'][0]}, "
                f"same metrics: {run['same_metrics_as_first']})",
                flush=True,
            )
    result = {
        "label": args.label,
        "pipeline": args.pipeline,
        "params": args.params,
        "cpus": len(os.sched_getaffinity(0)),
        "runs": runs,
    }
    print("\n| condition | threads.torch | threads used | wall s | same metrics |")
    print("|---|---|---|---|---|")
    for run in runs:
        print(
            f"| {run['condition']} | {run['threads_setting']} | {run['torch_threads']} "
            f"| {run['wall_seconds']} | {run['same_metrics_as_first']} |"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Cost curve: seconds and peak memory of each stage as the data grows.

    python -m neurec.scale_benchmark --sizes 0.1M 1M 5M 20M --model most_popular ials sasrec \\
        --model-override 'sasrec={"loss": "sampled_ce"}' --protocols full \\
        --out benchmarks/2026-12-03/scale [--movielens 20m] [--kedro-pipeline most_popular]

Each size is synthetic data at a MovieLens shape (145 interactions per user on average,
at least 20, as in ML-20M; the catalogue grows as ``27k * (size / 20M) ** 0.6``, which
gives ML-1M's ~4k items at 1 M and ML-20M's 27k at 20 M); ``--movielens 20m`` adds the
real data set (downloaded and cached, or ``--movielens-path``). Each size runs in a fresh
subprocess so that no size inherits another's memory: the data stages (ingest, split,
candidates) run once in it, then each model's stages (train_epoch: one epoch without
per-epoch validation, evaluate, report) one model after the other.
A stage's peak memory is the process's peak resident set size (Linux ``VmHWM``, reset
through ``/proc/self/clear_refs`` when the stage starts): it counts what numpy, torch
and the libraries allocate alike, which ``tracemalloc`` (Python's allocator only) does
not. Without that file (not Linux) the peak is the process's so far, marked as such.

Writes ``cost_curve.csv``, ``cost_curve.md`` (the table, each stage's log-log slope and
the thread count), ``cost_curve.png`` (log-log) and ``results.json`` under ``--out``.
``--kedro-pipeline`` also runs ``kedro run --pipelines=<name>`` on the largest synthetic
size in a scratch copy of the project and records its whole peak memory. ``--label``
(e.g. "under load") goes on every table and figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

DATA_STAGES = ("ingest", "split", "candidates")
MODEL_STAGES = ("train_epoch", "evaluate", "report")
STAGES = DATA_STAGES + MODEL_STAGES
PROJECT_ROOT = Path(__file__).resolve().parents[2]
ML20M_USERS, ML20M_ITEMS, MEAN_LENGTH, MIN_LENGTH = 138_000, 27_000, 145, 20


def parse_size(text: str) -> int:
    """``0.1M``, ``20M``, ``500k`` or ``100000`` -> interactions."""
    scale = {"k": 1e3, "m": 1e6}.get(text[-1].lower(), 1)
    number = text[:-1] if scale != 1 else text
    try:
        value = int(float(number) * scale)
    except ValueError:
        message = f"--sizes: expected e.g. 0.1M, 20M or 500k, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None
    if value < 10_000:
        raise argparse.ArgumentTypeError(f"--sizes: {text!r} is below 10k interactions")
    return value


def synthetic_shape(interactions: int) -> dict[str, int]:
    """The synthetic source's settings for about ``interactions`` rows at a MovieLens shape."""
    share = interactions / (ML20M_USERS * MEAN_LENGTH)
    n_items = max(4 * MEAN_LENGTH, round(ML20M_ITEMS * share**0.6))
    return {
        "n_users": max(2, round(interactions / MEAN_LENGTH)),
        "n_items": n_items,
        "mean_length": MEAN_LENGTH,
        "min_length": MIN_LENGTH,
    }


# --- one size, in its own process ---------------------------------------------------------


def _status_mb(key: str) -> float | None:
    status = Path("/proc/self/status")
    if not status.exists():
        return None
    for line in status.read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    return None


class Meter:
    """Seconds and peak resident memory of each stage (``with meter("split"): ...``)."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix  # printed before each stage's name (the model's)
        self.rows: dict[str, dict[str, Any]] = {}
        self.per_stage_peak = Path("/proc/self/clear_refs").exists()

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        if self.per_stage_peak:
            Path("/proc/self/clear_refs").write_text("5")  # VmHWM restarts at current RSS
        started = time.perf_counter()
        cpu = time.process_time()
        yield
        self.rows[stage] = {
            "seconds": round(time.perf_counter() - started, 3),
            "cpu_seconds": round(time.process_time() - cpu, 3),
            "peak_mb": _status_mb("VmHWM:"),
            "peak_is_per_stage": self.per_stage_peak,
        }
        print(f"  {self.prefix}{stage}: {self.rows[stage]['seconds']:.1f}s", flush=True)


def run_stages(
    meter: Meter,
    data_params: dict[str, Any],
    models: list[tuple[str, dict[str, Any], float]],
    evaluation_params: dict[str, Any],
    workdir: Path,
) -> dict[str, Any]:
    """The pipeline's stages, in order, each measured: the data stages once (``meter``),
    then each of ``models`` (name, parameters, epoch share) in turn; the one place that
    calls them (to switch to a shared prepare/train/evaluate module when there is one).

    An epoch share below 1 trains the epoch on that random share of the training users
    (their whole histories): an epoch's cost is a sum over users, so its seconds divided by
    the share estimate a full epoch's (``s_per_epoch``) at a fraction of the time.
    """
    import pandas as pd

    from neurec.evaluation import EvaluationConfig, EvaluationData, build_candidates, evaluate
    from neurec.interactions import Interactions
    from neurec.models import registry
    from neurec.models.base import build_config
    from neurec.sources import load_source
    from neurec.split import SplitConfig, dataset_statistics, split_interactions
    from neurec.statistics import metric_intervals

    # as the Kedro pipeline does: each stage reads its inputs from parquet, writes outputs
    with meter("ingest"):
        table = load_source(data_params).interactions
        table.to_parquet(workdir / "interactions.parquet")
        raw_rows = len(table)
        del table
    with meter("split"):
        table = pd.read_parquet(workdir / "interactions.parquet")
        split = split_interactions(
            table, build_config(SplitConfig, {"min_user_interactions": 5}, "split")
        )
        stats = dataset_statistics(table, split)
        del table
        for name in ("train", "validation", "test"):
            getattr(split, name).to_parquet(workdir / f"{name}.parquet")
    n_users, n_items = split.n_users, split.n_items
    del split
    config = build_config(EvaluationConfig, evaluation_params, "evaluation")

    def load(name: str) -> Interactions:
        return Interactions.from_frame(
            pd.read_parquet(workdir / f"{name}.parquet"), n_users, n_items
        )

    with meter("candidates"):
        data = EvaluationData.build(load("train"), load("validation"), load("test"))
        build_candidates(data, config).to_parquet(workdir / "candidates.parquet")
    per_model = {}
    for model, model_params, share in models:
        model_meter = Meter(prefix=f"{model} ")
        with model_meter("train_epoch"):
            train = load("train")
            if share < 1:
                chosen = np.random.default_rng(0).random(n_users) < share
                train = Interactions(
                    user=train.user[chosen[train.user]],
                    item=train.item[chosen[train.user]],
                    n_users=n_users,
                    n_items=n_items,
                )
            trained = int(np.count_nonzero(np.bincount(train.user, minlength=n_users)))
            recommender = registry()[model].from_params(model_params, n_users, n_items)
            fit = recommender.fit(train)  # no validator: the epoch alone
            del train
        with model_meter("evaluate"):
            candidates = pd.read_parquet(workdir / "candidates.parquet")
            per_user, summary = evaluate(recommender, data, candidates, config)
            per_user.to_parquet(workdir / "user_metrics.parquet")
            del recommender, candidates, per_user
        with model_meter("report"):
            intervals = metric_intervals(pd.read_parquet(workdir / "user_metrics.parquet"))
        seconds = model_meter.rows["train_epoch"]["seconds"]
        per_model[model] = {
            "params": model_params,
            "epoch_share": share,
            "trained_users": trained,
            "s_per_epoch": round(seconds / share, 1),
            "stages": model_meter.rows,
            "epochs": fit.epochs,
            "metrics": summary,
            "intervals_protocols": sorted(intervals),
        }
    return {"dataset": {**stats, "interactions_raw": raw_rows}, "models": per_model}


def run_one(args: argparse.Namespace) -> None:
    """Child process: one size, its stages, one JSON line on stdout's last line."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"  torch threads: {torch.get_num_threads()}", flush=True)
    data_params = json.loads(args.data)
    models = [(name, params, share) for name, params, share in json.loads(args.models)]
    meter = Meter()
    with tempfile.TemporaryDirectory(prefix="neurec-scale-") as folder:
        extra = run_stages(meter, data_params, models, json.loads(args.evaluation), Path(folder))
    result = {"stages": meter.rows, "torch_threads": torch.get_num_threads(), **extra}
    print("RESULT " + json.dumps(result, default=float), flush=True)


# --- the curve ------------------------------------------------------------------------------


def child_command(args: argparse.Namespace, data_params: dict[str, Any]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "neurec.scale_benchmark",
        "--one",
        "--data",
        json.dumps(data_params),
        "--models",
        json.dumps([[m, model_params_for(args, m), epoch_share(args, m)] for m in args.model]),
        "--evaluation",
        json.dumps({"protocols": args.protocols, "batch_size": args.eval_batch_size}),
        *(["--threads", str(args.threads)] if args.threads else []),
    ]


def parse_override(text: str) -> tuple[str | None, dict[str, Any]]:
    """``--model-override``: ``'{"factors": 128}'`` (every model) or ``'sasrec={...}'``."""
    name, equals, rest = text.partition("=")
    model, value = (name.strip(), rest) if equals and "{" not in name else (None, text)
    try:
        params = json.loads(value)
    except json.JSONDecodeError as error:
        message = f"--model-override: expected [MODEL=]JSON object, got {text!r} ({error})"
        raise argparse.ArgumentTypeError(message) from None
    if not isinstance(params, dict):
        raise argparse.ArgumentTypeError(f"--model-override: expected a JSON object, got {text!r}")
    return model, params


def parse_share(text: str) -> tuple[str | None, float]:
    """``--epoch-share``: ``0.1`` (every model) or ``sasrec=0.1``, a share in (0, 1]."""
    name, equals, rest = text.partition("=")
    model, value = (name.strip(), rest) if equals else (None, text)
    try:
        share = float(value)
    except ValueError:
        share = math.nan
    if not 0 < share <= 1:
        message = f"--epoch-share: expected [MODEL=]share in (0, 1], got {text!r}"
        raise argparse.ArgumentTypeError(message)
    return model, share


def epoch_share(args: argparse.Namespace, model: str) -> float:
    """The share of training users the model's epoch runs on (the last that names it)."""
    shares = [share for target, share in args.epoch_share or [] if target in (None, model)]
    return shares[-1] if shares else 1.0


def model_params_for(args: argparse.Namespace, model: str) -> dict[str, Any]:
    """The model's defaults (its config dataclass) and its ``--model-override``s, for one
    epoch: training cost per epoch is what the curve measures."""
    params: dict[str, Any] = {}
    for target, override in args.model_override or []:
        if target in (None, model):
            params.update(override)
    if "epochs" in _config_fields(model):
        params.setdefault("epochs", 1)
    return params


def _config_fields(model: str) -> set[str]:
    import dataclasses

    from neurec.models import registry

    return {f.name for f in dataclasses.fields(registry()[model].config_class)}


def run_child(command: list[str], env: dict[str, str]) -> tuple[dict[str, Any], float]:
    """Run a child to the end; its result and its whole peak RSS in MB (wait4's rusage)."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        if not line.startswith("RESULT "):
            print(line, end="", flush=True)
        lines.append(line)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"scale benchmark: {command[3:6]} failed (exit {process.returncode})")
    result = json.loads(lines[-1].removeprefix("RESULT "))
    return result, usage.ru_maxrss / 1024  # kilobytes on Linux


def child_env(threads: int | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")])
    )
    if threads:  # torch's intra-op threads (the child also calls torch.set_num_threads)
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def slopes(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """Least-squares slope of log(seconds) on log(interactions) per stage: 1 is linear."""
    out: dict[str, float | None] = {}
    for stage in STAGES:
        points = [
            (math.log(r["interactions"]), math.log(r[f"{stage}_s"]))
            for r in rows
            if r.get(f"{stage}_s") and r["source"] == "synthetic"
        ]
        if len({x for x, _ in points}) < 2:
            out[stage] = None
            continue
        x, y = np.array(points).T
        out[stage] = round(float(np.polyfit(x, y, 1)[0]), 2)
    return out


def table_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per size and model: the size's data stages (run once, the same in each of
    its rows) and the model's own stages."""
    rows = []
    for result in results:
        # clear_refs resets the kernel's maxrss that wait4 reports too: the whole process's
        # peak is then the largest stage peak
        every_stage = [result["stages"], *(m["stages"] for m in result["models"].values())]
        peaks = [row["peak_mb"] or 0 for stages in every_stage for row in stages.values()]
        process_peak = round(max(result["process_peak_mb"], *peaks))
        for model, measured in result["models"].items():
            row = {
                "source": result["source"],
                "model": model,
                "interactions": result["dataset"]["interactions_raw"],
                "users": result["dataset"]["users"],
                "items": result["dataset"]["items"],
            }
            for stage in STAGES:
                stages = result["stages"] if stage in DATA_STAGES else measured["stages"]
                row[f"{stage}_s"] = stages[stage]["seconds"]
                row[f"{stage}_peak_mb"] = stages[stage]["peak_mb"]
            row["total_s"] = round(sum(row[f"{s}_s"] for s in STAGES), 1)
            row["epoch_share"] = measured["epoch_share"]
            row["s_per_epoch"] = measured["s_per_epoch"]
            row["process_peak_mb"] = process_peak
            row["torch_threads"] = result["torch_threads"]
            rows.append(row)
    return rows


def write_outputs(out: Path, payload: dict[str, Any]) -> None:
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    rows = payload["rows"]
    frame = pd.DataFrame(rows)
    frame.to_csv(out / "cost_curve.csv", index=False)
    label = f" ({payload['label']})" if payload["label"] else ""
    lines = [
        f"# Cost curve{label}",
        "",
        f"Command: `{payload['command']}`",
        f"Models: {', '.join(payload['models'])}; protocols: {', '.join(payload['protocols'])}; "
        f"torch threads: {payload['torch_threads']} (of {payload['cpu_count']} CPUs); "
        f"{payload['machine']}; {payload['date']}.",
        "Seconds per stage (wall) and peak resident memory per stage (MB); each size in a "
        "fresh process, its data stages (ingest, split, candidates) once and the same in "
        "each of its rows. train_epoch is one epoch (`epochs: 1` unless overridden) without "
        "per-epoch validation, on the epoch share of the training users (random, whole "
        "histories); s/epoch = train_epoch s / share (measured when the share is 1, "
        "extrapolated below). evaluate scores every test user on the protocols above (full "
        "ranking of all items with `full`). Process peak: the whole size's process.",
        "",
        "| source | model | interactions | users | items | "
        + " | ".join(f"{s} s" for s in STAGES)
        + " | total s | epoch share | s/epoch | "
        + " | ".join(f"{s} MB" for s in STAGES)
        + " | process peak MB |",
        "|" + "---|" * (5 + 2 * len(STAGES) + 4),
    ]
    for row in rows:
        cells = [
            row["source"],
            row["model"],
            f"{row['interactions']:,}",
            f"{row['users']:,}",
            f"{row['items']:,}",
        ]
        cells += [f"{row[f'{s}_s']:.2f}" for s in STAGES] + [f"{row['total_s']:.1f}"]
        cells += [f"{row['epoch_share']:g}", f"{row['s_per_epoch']:.1f}"]
        cells += [f"{row[f'{s}_peak_mb']:.0f}" if row[f"{s}_peak_mb"] else "-" for s in STAGES]
        cells.append(f"{row['process_peak_mb']:,}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Log-log slope of seconds against interactions (synthetic sizes; 1 = linear):",
        "",
    ]
    for model, model_slopes in payload["slopes"].items():
        shown = ", ".join(f"{s} {v if v is not None else 'n/a'}" for s, v in model_slopes.items())
        lines.append(f"- {model}: {shown}")
    if payload.get("kedro"):
        kedro = payload["kedro"]
        lines += [
            "",
            f"`{kedro['command']}` at {kedro['interactions']:,} interactions: "
            f"{kedro['seconds']:.0f}s, peak memory {kedro['peak_mb']:,.0f} MB.",
        ]
    (out / "cost_curve.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps(payload, indent=2, default=float))
    plot(out / "cost_curve.png", rows, label)


def plot(path: Path, rows: list[dict[str, Any]], label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # the first model's rows: the data stages are the same in each model's
    synthetic = [r for r in rows if r["source"] == "synthetic" and r["model"] == rows[0]["model"]]
    figure, (time_axis, memory_axis) = plt.subplots(1, 2, figsize=(11, 4.5))
    x = [r["interactions"] for r in synthetic]
    for stage in STAGES:
        time_axis.plot(x, [r[f"{stage}_s"] for r in synthetic], marker="o", label=stage)
        memory_axis.plot(
            x, [r[f"{stage}_peak_mb"] or np.nan for r in synthetic], marker="o", label=stage
        )
    for axis, what in ((time_axis, "seconds"), (memory_axis, "peak memory, MB")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("interactions")
        axis.set_ylabel(what)
        axis.grid(True, which="both", alpha=0.3)
    time_axis.legend(fontsize=8)
    figure.suptitle(f"neurec cost curve per stage{label}")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def run_kedro(pipeline: str, shape: dict[str, int], threads: int | None) -> dict[str, Any]:
    """``kedro run --pipelines=<pipeline>`` on synthetic data of ``shape`` in a scratch copy of
    the project (the user's data/ stays untouched); its wall time and whole peak memory."""
    with tempfile.TemporaryDirectory(prefix="neurec-scale-kedro-") as folder:
        project = Path(folder)
        shutil.copy(PROJECT_ROOT / "pyproject.toml", project)
        shutil.copytree(
            PROJECT_ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local")
        )
        (project / "conf" / "local").mkdir()
        # a copy, not a link: kedro resolves source_dir and wants it inside the project
        shutil.copytree(
            PROJECT_ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__")
        )
        params = ",".join(f"data.synthetic.{k}={v}" for k, v in shape.items())
        command = [
            sys.executable,
            "-m",
            "kedro",
            "run",
            f"--pipelines={pipeline}",
            "--params",
            f"data.source=synthetic,{params}",
        ]
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=project, env=child_env(threads))
        _, status, usage = os.wait4(process.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"scale benchmark: {' '.join(command[2:])} failed")
        return {
            "command": "kedro run --pipelines=" + pipeline + " --params " + command[-1],
            "interactions": shape["n_users"] * MEAN_LENGTH,
            "seconds": time.perf_counter() - started,
            "peak_mb": usage.ru_maxrss / 1024,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", nargs="+", type=parse_size, default=[parse_size("0.1M"), parse_size("1M")]
    )
    parser.add_argument(
        "--model", nargs="+", default=["ials"], help="the models trained and evaluated, in turn"
    )
    parser.add_argument(
        "--model-override",
        type=parse_override,
        action="append",
        help="[MODEL=]JSON parameters (every model without MODEL=); repeatable",
    )
    parser.add_argument(
        "--epoch-share",
        type=parse_share,
        action="append",
        help="[MODEL=]share of training users its epoch runs on (s/epoch extrapolated); "
        "repeatable, default 1",
    )
    parser.add_argument(
        "--protocols", nargs="+", default=["full", "sampled_uniform_99", "sampled_popularity_100"]
    )
    parser.add_argument("--eval-batch-size", type=int, default=1024)
    parser.add_argument(
        "--movielens", default=None, help="also MovieLens of this variant (20m, 25m)"
    )
    parser.add_argument(
        "--movielens-path", default=None, help="its ratings file (default: download)"
    )
    parser.add_argument(
        "--kedro-pipeline", default=None, help="also time `kedro run` at the largest size"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch/BLAS threads (default: torch's)"
    )
    parser.add_argument("--label", default="", help='e.g. "under load"; shown on the outputs')
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/<date>/scale")
    # internal: one size in a child process
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--models", default="[]", help=argparse.SUPPRESS)
    parser.add_argument("--evaluation", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        run_one(args)
        return 0
    import torch

    date = time.strftime("%Y-%m-%d")
    out = args.out or PROJECT_ROOT / "benchmarks" / date / "scale"
    runs = [
        ("synthetic", {"source": "synthetic", "synthetic": synthetic_shape(n)})
        for n in sorted(args.sizes)
    ]
    if args.movielens:
        options = {"variant": args.movielens, "cache_dir": str(PROJECT_ROOT / "data" / "01_raw")}
        runs.append(
            (
                "movielens-" + args.movielens,
                {"source": "movielens", "path": args.movielens_path, "movielens": options},
            )
        )
    results = []
    for source, data_params in runs:
        print(f"{source} {data_params.get('synthetic', '')}", flush=True)
        result, peak = run_child(child_command(args, data_params), child_env(args.threads))
        results.append({**result, "source": source, "process_peak_mb": peak})
    rows = table_rows(results)
    payload = {
        "command": "python -m neurec.scale_benchmark "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "label": args.label,
        "models": args.model,
        "protocols": args.protocols,
        "torch_threads": results[0]["torch_threads"],
        "cpu_count": os.cpu_count(),
        "machine": platform.platform(),
        "date": date,
        "rows": rows,
        "slopes": {m: slopes([r for r in rows if r["model"] == m]) for m in args.model},
        "results": results,
        "torch_version": torch.__version__,
    }
    if args.kedro_pipeline:
        payload["kedro"] = run_kedro(
            args.kedro_pipeline, synthetic_shape(max(args.sizes)), args.threads
        )
    write_outputs(out, payload)
    print((out / "cost_curve.md").read_text())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

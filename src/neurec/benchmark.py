"""Benchmark command: train chosen models on a chosen data set and protocol, report cost.

    python -m neurec.benchmark --source movielens --path ../shared/data/ml-100k/u.data \\
        --models most_popular ease gmf neumf neumf:pretrain=false sasrec:loss=bce \\
        --protocols full sampled_uniform_99 --out benchmarks/results/ml100k.json

A model is ``name`` or ``name:key=value,key=value`` (overrides on top of the project's
``parameters_<name>.yml``, values parsed as YAML). Per model it prints and writes
seconds per epoch, epochs (best), training time, evaluation time per protocol, peak
memory and the metrics; the JSON also records the protocol, seed and thread count.
``--seeds 42 43 44`` runs every model once per seed (``seed`` set in every model block,
so a pre-trained NeuMF's GMF and NCF change seed with it); results are keyed
``<model> seed=<N>`` and the tables give each model's mean and standard deviation.
It runs the chain the pipelines run (``neurec.workflow``), without a Kedro run. The
parameters are those of the Kedro project at ``--project`` (default: the working
directory) in ``--env``; outside a project, the library's defaults.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import platform
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from kedro.utils import find_kedro_project

from neurec import workflow
from neurec.errors import ConfigError, NeurecError
from neurec.evaluation import EvaluationConfig
from neurec.models import Recommender, registry
from neurec.models.base import build_config, with_dependencies
from neurec.split import Split
from neurec.threads import ThreadsConfig, apply_threads

logger = logging.getLogger("neurec.benchmark")


def parse_model_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``sasrec:loss=bce,max_len=50`` -> ("sasrec", {"loss": "bce", "max_len": 50}).

    A list value keeps its commas: ``multvae:hidden_dims=[600,300],beta=0.1``.
    """
    name, _, rest = spec.partition(":")
    if name not in registry():
        raise ConfigError(f"--models: unknown model {name!r}; registered: {sorted(registry())}")
    overrides = {}
    for pair in filter(None, re.split(r",(?![^\[]*\])", rest)):  # not inside [...]
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--models: expected key=value in {spec!r}, got {pair!r}")
        overrides[key] = yaml.safe_load(value)
    return name, overrides


def peak_memory_mb() -> float | None:
    """Peak resident memory of this process since the last reset (Linux only)."""
    status = Path("/proc/self/status")
    if not status.exists():
        return None
    for line in status.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def reset_peak_memory() -> None:
    with contextlib.suppress(OSError):  # not Linux: peak memory is then process-wide
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def run_benchmark(
    data_params: dict[str, Any],
    split_params: dict[str, Any],
    evaluation_params: dict[str, Any],
    model_specs: list[str],
    model_params: dict[str, dict[str, Any]],
    seeds: list[int] | None = None,
) -> dict[str, Any]:
    started = time.perf_counter()
    # parsed first: a mistyped spec stops the run before anything trains
    specs = {spec: parse_model_spec(spec) for spec in model_specs}
    config = workflow.typed(EvaluationConfig, evaluation_params, "evaluation")
    split, candidates = workflow.prepare(data_params, split_params, config)
    logger.info(
        "data ready in %.1fs: %d users, %d items, %d train interactions",
        time.perf_counter() - started,
        split.n_users,
        split.n_items,
        len(split.train),
    )
    results: dict[str, Any] = {}
    for seed in seeds or [None]:
        seeded = model_params if seed is None else with_seed(model_params, seed)
        for spec, result in train_and_evaluate(specs, seeded, split, candidates, config):
            key = spec if seed is None else f"{spec} seed={seed}"
            results[key] = {"spec": spec, "seed": seed, **result}
            _print_row(key, results[key])
    return {
        "data": data_params,
        "dataset": split.statistics,
        "split": split_params,
        "protocols": {p.name: p.describe() for p in config.protocols},
        "candidate_seed": config.seed,
        "torch_threads": torch.get_num_threads(),
        "machine": platform.platform(),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "models": results,
    }


def with_seed(model_params: dict[str, Any], seed: int) -> dict[str, Any]:
    """The parameters with ``seed`` set in the block of every model that takes one."""
    seeded = {
        name: {**(model_params.get(name) or {}), "seed": seed}
        for name, model in registry().items()
        if "seed" in {field.name for field in dataclasses.fields(model.config_class)}
    }
    return {**model_params, **seeded}


def train_and_evaluate(
    specs: dict[str, tuple[str, dict[str, Any]]],
    model_params: dict[str, Any],
    split: Split,
    candidates: pd.DataFrame,
    config: EvaluationConfig,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(spec, result)`` of each model spec (-> its name and overrides) in turn, trained on
    ``split`` and tested."""
    trained: dict[str, Recommender] = {}  # default-configured models, reusable as pretrained
    for spec, (name, overrides) in specs.items():
        pretrained = {}
        run_params = {**model_params, name: {**(model_params.get(name) or {}), **overrides}}
        for dependency in with_dependencies([name], run_params)[:-1]:  # none for most
            if dependency not in trained:
                logger.info("%s: training %s first, to initialise from", spec, dependency)
                trained[dependency], _ = workflow.train(
                    dependency, model_params.get(dependency), split
                )
            pretrained[dependency] = trained[dependency]
        reset_peak_memory()
        model, report = workflow.train(name, run_params[name], split, pretrained=pretrained)
        if not overrides:
            trained[name] = model
        evaluation = workflow.evaluate(model, split, candidates, config)
        epoch_seconds = [entry["seconds"] for entry in report.history if "seconds" in entry]
        per_epoch = round(float(np.mean(epoch_seconds)), 3) if epoch_seconds else None
        yield (
            spec,
            {
                "model": name,
                "overrides": overrides,
                "seconds_per_epoch": per_epoch,
                "epochs": report.epochs,
                "best_epoch": report.best_epoch,
                "refit_epochs": report.refit_epochs,
                "train_seconds": round(report.train_seconds, 2),
                "evaluation_seconds": {p: round(t, 3) for p, t in evaluation.seconds.items()},
                "peak_memory_mb": peak_memory_mb(),
                "metrics": evaluation.metrics,
            },
        )


def parameters(project: Path, env: str) -> dict[str, Any]:
    """The parameters of the Kedro project at or above ``project`` in ``env``; outside a
    project, none (every block takes its config's defaults)."""
    root = find_kedro_project(project.resolve())
    if root is None:
        logger.info("%s is not in a Kedro project: the library's default parameters", project)
        return {}
    return workflow.project_parameters(root, env)


def _print_row(spec: str, result: dict[str, Any]) -> None:
    parts = [
        f"{spec}: {result['train_seconds']:.1f}s train",
        f"{result['seconds_per_epoch']}s/epoch",
        f"epochs {result['epochs']} (best {result['best_epoch']})",
        f"refit on train + validation: {result['refit_epochs']} epochs"
        if result.get("refit_epochs")
        else "",
        f"peak {result['peak_memory_mb']:.0f} MB" if result["peak_memory_mb"] else "",
    ]
    print(" | ".join(p for p in parts if p), flush=True)
    for protocol, values in result["metrics"].items():
        shown = " ".join(f"{k} {values[k]:.4f}" for k in ("HR@10", "NDCG@10", "MRR") if k in values)
        print(
            f"    {protocol}: {shown} (eval {result['evaluation_seconds'][protocol]:.2f}s)",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default=None, help="data.source (default: conf/base)")
    parser.add_argument("--path", default=None, help="data.path")
    parser.add_argument("--models", nargs="+", required=True, help="name or name:key=value,..")
    parser.add_argument("--protocols", nargs="+", default=None, help="evaluation.protocols")
    parser.add_argument("--split", default=None, help="split.method")
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=None,
        help="run every model once per seed (default: once, at each model's own seed)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: threads.torch)"
    )
    parser.add_argument(
        "--project",
        type=Path,
        default=Path("."),
        help="the Kedro project whose parameters to use (default: the working directory)",
    )
    parser.add_argument(
        "--env",
        default="benchmark",
        help="Kedro environment merged over conf/base (default: benchmark, the full budget)",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        params = parameters(args.project, args.env)
        threads = {"torch": args.threads} if args.threads is not None else params.get("threads")
        apply_threads(build_config(ThreadsConfig, threads, "threads"))
        data_params = dict(params.get("data") or {"source": "synthetic"})
        if args.source:
            data_params = {"source": args.source, "path": args.path}
        elif args.path:
            data_params["path"] = args.path
        split_params = dict(params.get("split") or {})
        split_params |= {"method": args.split} if args.split else {}
        evaluation_params = dict(params.get("evaluation") or {})
        if args.protocols:
            evaluation_params["protocols"] = args.protocols
        result = run_benchmark(
            data_params, split_params, evaluation_params, args.models, params, args.seeds
        )
    except NeurecError as error:
        parser.exit(2, f"error: {error}\n")
    result["parameters_env"] = args.env
    print(f"threads: {result['torch_threads']}, wall time {result['wall_seconds']}s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        temporary = args.out.with_suffix(".tmp")
        temporary.write_text(json.dumps(result, indent=2, default=str))
        temporary.replace(args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark command: train chosen models on a chosen data set and protocol, report cost.

    python -m neurec.benchmark --source movielens --path ../shared/data/ml-100k/u.data \\
        --models most_popular ease gmf neumf neumf:pretrain=false sasrec:loss=bce \\
        --protocols full sampled_uniform_99 --out benchmarks/results/ml100k.json

A model is ``name`` or ``name:key=value,key=value`` (overrides on top of
``conf/base/parameters_<name>.yml``, values parsed as YAML). Per model it prints and writes
seconds per epoch, epochs (best), training time, evaluation time per protocol, peak
memory and the metrics; the JSON also records the protocol, seed and thread count.
It uses the model library directly (no Kedro run), the same code the pipelines call.
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
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from kedro.config import OmegaConfigLoader

from neurec.errors import ConfigError, NeurecError
from neurec.evaluation import (
    EvaluationConfig,
    EvaluationData,
    build_candidates,
    evaluate,
    make_validator,
)
from neurec.interactions import Interactions
from neurec.models import Recommender, registry
from neurec.models.base import build_config, with_dependencies
from neurec.sources import load_source
from neurec.split import SplitConfig, dataset_statistics, split_interactions
from neurec.validation import effective_parameters

logger = logging.getLogger("neurec.benchmark")
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


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


def project_parameters(env: str = "benchmark", conf_dir: Path = CONF_DIR) -> dict[str, Any]:
    """The parameters ``kedro run --env <env>`` would use (base merged softly with env), each
    typed block completed with its defaults as in a run (``neurec.validation``): results
    record the whole split, though conf/ sets only what the project changes."""
    loader = OmegaConfigLoader(
        str(conf_dir),
        base_env="base",
        default_run_env=env,
        merge_strategy={"parameters": "soft"},
    )
    return effective_parameters(loader["parameters"])


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
) -> dict[str, Any]:
    started = time.perf_counter()
    split_config = build_config(SplitConfig, split_params, "split")
    config = build_config(EvaluationConfig, evaluation_params, "evaluation")
    source = load_source(data_params)
    split = split_interactions(source.interactions, split_config)
    train, validation, test = (
        Interactions.from_frame(t, split.n_users, split.n_items)
        for t in (split.train, split.validation, split.test)
    )
    data = EvaluationData.build(train, validation, test)
    candidates = build_candidates(data, config)
    validator = make_validator(train, validation)
    logger.info(
        "data ready in %.1fs: %d users, %d items, %d train interactions",
        time.perf_counter() - started,
        split.n_users,
        split.n_items,
        len(train),
    )
    specs = [parse_model_spec(spec) for spec in model_specs]
    trained: dict[str, Recommender] = {}  # default-configured models, reusable as pretrained
    results: dict[str, Any] = {}
    for spec, (name, overrides) in zip(model_specs, specs, strict=True):
        pretrained = {}
        if registry()[name].pretrained_from and _uses_pretraining(name, model_params, overrides):
            for dependency in with_dependencies([name])[:-1]:
                if dependency not in trained:
                    logger.info("%s: training %s first, to initialise from", spec, dependency)
                    trained[dependency], _ = _fit(dependency, {}, model_params, train, validator)
                pretrained[dependency] = trained[dependency]
        reset_peak_memory()
        model, report = _fit(name, overrides, model_params, train, validator, pretrained)
        if not overrides:
            trained[name] = model
        evaluation_seconds = {}
        metrics = {}
        for protocol in config.protocols:
            one = dataclasses.replace(config, protocols=(protocol,))
            t0 = time.perf_counter()
            _, summary = evaluate(model, data, candidates, one)
            evaluation_seconds[protocol.name] = round(time.perf_counter() - t0, 3)
            metrics.update(summary)
        epoch_seconds = [entry["seconds"] for entry in report.history if "seconds" in entry]
        results[spec] = {
            "model": name,
            "overrides": overrides,
            "seconds_per_epoch": round(float(np.mean(epoch_seconds)), 3) if epoch_seconds else None,
            "epochs": report.epochs,
            "best_epoch": report.best_epoch,
            "train_seconds": round(report.train_seconds, 2),
            "evaluation_seconds": evaluation_seconds,
            "peak_memory_mb": peak_memory_mb(),
            "metrics": metrics,
        }
        _print_row(spec, results[spec])
    return {
        "data": data_params,
        "dataset": dataset_statistics(source.interactions, split),
        "split": split_params,
        "protocols": {p.name: p.describe() for p in config.protocols},
        "candidate_seed": config.seed,
        "torch_threads": torch.get_num_threads(),
        "machine": platform.platform(),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "models": results,
    }


def _uses_pretraining(name: str, model_params: dict, overrides: dict) -> bool:
    merged = {**model_params.get(name, {}), **overrides}
    return bool(merged.get("pretrain", True))


def _fit(name, overrides, model_params, train, validator, pretrained=None):
    params = {**(model_params.get(name) or {}), **overrides}
    model = registry()[name].from_params(params, train.n_users, train.n_items)
    report = model.fit(train, validator, pretrained or None)
    return model, report


def _print_row(spec: str, result: dict[str, Any]) -> None:
    parts = [
        f"{spec}: {result['train_seconds']:.1f}s train",
        f"{result['seconds_per_epoch']}s/epoch",
        f"epochs {result['epochs']} (best {result['best_epoch']})",
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
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument(
        "--env",
        default="benchmark",
        help="Kedro environment merged over conf/base (default: benchmark, the full budget)",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    params = project_parameters(args.env)
    data_params = dict(params["data"])
    if args.source:
        data_params = {"source": args.source, "path": args.path}
    elif args.path:
        data_params["path"] = args.path
    split_params = dict(params["split"]) | ({"method": args.split} if args.split else {})
    evaluation_params = dict(params["evaluation"])
    if args.protocols:
        evaluation_params["protocols"] = args.protocols
    try:
        result = run_benchmark(data_params, split_params, evaluation_params, args.models, params)
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

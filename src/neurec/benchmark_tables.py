"""Markdown tables from benchmark JSON files, one table per data set and protocol.

    python -m neurec.benchmark_tables benchmarks/2026-11-29/*.json > benchmarks/2026-11-29/tables.md

Files written by ``python -m neurec.benchmark --out`` on the same data set, split and
candidate seed are merged into one table per protocol; a model benchmarked in two files keeps
the row of the file named later. Each table's heading names the protocol, the candidate seed
and the thread count, so sampled and full-ranking figures never share a column. The runs of
one model at several seeds (``--seeds``) make one row: each metric's mean and sample
standard deviation, the mean seconds per epoch and training time, every seed's best epoch.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from neurec.errors import ConfigError

METRICS = ("HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR")


def load_results(paths: list[Path]) -> dict[tuple, dict[str, Any]]:
    """Group result files by (data path, split, candidate seed, threads), in the given order."""
    groups: dict[tuple, dict[str, Any]] = {}
    for path in paths:
        try:
            result = json.loads(path.read_text())
            split = result["split"]
            key = (
                result["data"].get("path") or result["data"]["source"],
                json.dumps(split, sort_keys=True),
                result["candidate_seed"],
                result["torch_threads"],
            )
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ConfigError(f"{path}: not a benchmark result file ({error})") from error
        group = groups.setdefault(
            key,
            {
                "dataset": result["dataset"],
                "split_method": split["method"],
                "protocols": {},
                "models": {},
                "files": [],
            },
        )
        group["protocols"].update(result["protocols"])
        group["models"].update(result["models"])
        group["files"].append(path.name)
    return groups


def markdown(groups: dict[tuple, dict[str, Any]]) -> str:
    lines: list[str] = []
    for (data, _, seed, threads), group in groups.items():
        stats = group["dataset"]
        lines += [
            f"## {data}",
            "",
            f"{stats['users']} users, {stats['items']} items, {stats['train_interactions']}"
            f" train interactions; split {group['split_method']}; {threads} torch"
            f" threads; from {', '.join(group['files'])}.",
            "",
        ]
        # row -> its runs: one per seed of a --seeds run, else the one run of its key
        by_protocol: dict[str, dict[tuple, list[dict]]] = defaultdict(lambda: defaultdict(list))
        for key, result in group["models"].items():
            seeded = result.get("seed") is not None
            row = (result["spec"] if seeded else key, seeded)
            for protocol in result["metrics"]:
                by_protocol[protocol][row].append(result)
        for protocol, rows in by_protocol.items():
            lines += [
                f"### `{protocol}`: {group['protocols'][protocol]} (candidate seed {seed})",
                "",
                "| model | seeds | " + " | ".join(METRICS) + " | s/epoch | best epoch | train s |",
                "|---" * (len(METRICS) + 5) + "|",
            ]
            ordered = sorted(rows.items(), key=lambda row: -mean(row[1], protocol, "NDCG@10"))
            lines += [table_row(spec, runs, protocol) for (spec, _), runs in ordered]
            lines.append("")
    return "\n".join(lines)


def mean(runs: list[dict], protocol: str, metric: str) -> float:
    return statistics.fmean(run["metrics"][protocol][metric] for run in runs)


def table_row(spec: str, runs: list[dict], protocol: str) -> str:
    """One model's row; over several seeds, ``mean ± sd`` (sample standard deviation)."""
    seeds = ", ".join(str(run["seed"]) for run in runs if run.get("seed") is not None) or "-"
    cells = []
    for metric in METRICS:
        values = [run["metrics"][protocol][metric] for run in runs]
        spread = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
        cells.append(f"{statistics.fmean(values):.4f}{spread}")
    per_epoch = [run["seconds_per_epoch"] for run in runs if run["seconds_per_epoch"] is not None]
    best = ", ".join(f"{run['best_epoch']} of {run['epochs']}" for run in runs)
    train = statistics.fmean(run["train_seconds"] for run in runs)
    return (
        f"| {spec} | {seeds} | "
        + " | ".join(cells)
        + f" | {round(statistics.fmean(per_epoch), 3) if per_epoch else '-'}"
        + f" | {best} | {train:.2f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="benchmark --out JSON files")
    args = parser.parse_args(argv)
    try:
        print(markdown(load_results(args.files)))
    except ConfigError as error:
        parser.exit(2, f"error: {error}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Markdown tables from benchmark JSON files, one table per data set and protocol.

    python -m neurec.benchmark_tables benchmarks/2026-11-29/*.json > benchmarks/2026-11-29/tables.md

Files written by ``python -m neurec.benchmark --out`` on the same data set, split and
candidate seed are merged into one table per protocol; a model benchmarked in two files keeps
the row of the file named later. Each table's heading names the protocol, the candidate seed
and the thread count, so sampled and full-ranking figures never share a column.
"""

from __future__ import annotations

import argparse
import json
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
        by_protocol: dict[str, list[tuple[str, dict]]] = defaultdict(list)
        for spec, result in group["models"].items():
            for protocol in result["metrics"]:
                by_protocol[protocol].append((spec, result))
        for protocol, rows in by_protocol.items():
            lines += [
                f"### `{protocol}`: {group['protocols'][protocol]} (candidate seed {seed})",
                "",
                "| model | " + " | ".join(METRICS) + " | s/epoch | best epoch | train s |",
                "|---" * (len(METRICS) + 4) + "|",
            ]
            rows.sort(key=lambda row: -row[1]["metrics"][protocol]["NDCG@10"])
            for spec, result in rows:
                values = result["metrics"][protocol]
                per_epoch = result["seconds_per_epoch"]
                lines.append(
                    f"| {spec} | "
                    + " | ".join(f"{values[m]:.4f}" for m in METRICS)
                    + f" | {per_epoch if per_epoch is not None else '-'}"
                    + f" | {result['best_epoch']} of {result['epochs']}"
                    + f" | {result['train_seconds']} |"
                )
            lines.append("")
    return "\n".join(lines)


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

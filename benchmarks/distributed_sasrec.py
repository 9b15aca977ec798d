"""s/epoch and validation NDCG@10 of one model at world_size 1, 2, ... (data-parallel).

    OMP_NUM_THREADS=1 python benchmarks/distributed_sasrec.py \\
        --path ../shared/data/ml-1m/ratings_users_1-2999_partial.dat --epochs 3 --world-sizes 1 2

The model's settings are `--env benchmark`'s (conf/base merged with conf/benchmark), with
`epochs` (and early stopping's patience) set to `--epochs`; the ML-1M half, leave-one-out.
Each process uses one thread (set OMP_NUM_THREADS=1), as each worker would on its own core.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import torch

from neurec.benchmark import project_parameters
from neurec.distributed import train_distributed
from neurec.evaluation import make_validator
from neurec.interactions import Interactions
from neurec.models import registry
from neurec.models.base import build_config
from neurec.sources import load_source
from neurec.split import SplitConfig, split_interactions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", required=True, help="a MovieLens ratings file")
    parser.add_argument("--model", default="sasrec")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--world-sizes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", help="write the figures as JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    params = project_parameters("benchmark")
    source = load_source({**params["data"], "source": "movielens", "path": args.path})
    split = split_interactions(source.interactions, build_config(SplitConfig, {}, "split"))
    train, validation = (
        Interactions.from_frame(t, split.n_users, split.n_items)
        for t in (split.train, split.validation)
    )
    figures = []
    for world_size in args.world_sizes:
        model_params = {
            **params[args.model],
            "epochs": args.epochs,
            "patience": args.epochs,
            "distributed": {"world_size": world_size},
        }
        model = registry()[args.model].from_params(model_params, train.n_users, train.n_items)
        started = time.perf_counter()
        if world_size == 1:
            report = model.fit(train, make_validator(train, validation))
        else:
            report = train_distributed(model, train, validation)
        seconds = [entry["seconds"] for entry in report.history]
        figures.append(
            {
                "model": args.model,
                "world_size": world_size,
                "epochs": report.epochs,
                "seconds_per_epoch": round(sum(seconds) / len(seconds), 1),
                "wall_seconds": round(time.perf_counter() - started, 1),
                "val_NDCG@10": [round(e["val_NDCG@10"], 4) for e in report.history],
            }
        )
        print(json.dumps(figures[-1]), flush=True)
    if args.out:
        with open(args.out, "w") as file:
            json.dump(figures, file, indent=2)


if __name__ == "__main__":
    main()

"""RecBole 1.2.1's NeuMF on ML-100K, leave-one-out, full ranking (issue 15's reference side).

Run with the Python of a separate virtualenv that has RecBole (never the project's):

    OMP_NUM_THREADS=1 /tmp/recbole-venv/bin/python benchmarks/recbole_neumf.py \\
        --ratings ../shared/data/ml-100k/u.data --work /tmp/recbole-work \\
        --seeds 2020 42 1 --valid-metric MRR@10 --out /tmp/recbole-work/mrr.json

It writes RecBole's atomic ``ml-100k.inter`` (u.data's rows in file order, the layout of
RecBole's own ML-100K file) under ``--work``, never into the repository, and runs the
steps of ``recbole.quick_start.run_recbole`` (importing that module needs ``ray``, which
nothing here uses) with RecBole's NeuMF defaults and 20 epochs. ``--split-out`` writes
each user's validation and test item (MovieLens ids) as RecBole's split picks them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

# RecBole saves the best epoch with its Config object and reloads it with a bare
# torch.load, which torch >= 2.6 refuses by default (weights_only=True)
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.data.transform import construct_transform
from recbole.utils import get_flops, get_model, get_trainer, init_logger, init_seed


def write_inter(ratings: Path, work: Path) -> None:
    folder = work / "ml-100k"
    folder.mkdir(parents=True, exist_ok=True)
    rows = (line.rstrip("\n") for line in ratings.open())
    text = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    text += "".join(f"{row}\n" for row in rows if row)
    partial = folder / "ml-100k.inter.part"
    partial.write_text(text)
    partial.replace(folder / "ml-100k.inter")


def run(work: Path, seed: int, valid_metric: str, epochs: int) -> tuple[dict, dict]:
    config = Config(
        model="NeuMF",
        dataset="ml-100k",
        config_dict={
            "data_path": str(work),
            "checkpoint_dir": str(work / "saved"),
            "seed": seed,
            "epochs": epochs,
            "use_gpu": False,
            "show_progress": False,
            "eval_args": {
                "split": {"LS": "valid_and_test"},
                "order": "TO",
                "group_by": "user",
                "mode": "full",
            },
            "metrics": ["NDCG", "Hit", "MRR"],
            "topk": [10],
            "valid_metric": valid_metric,
        },
    )
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    get_flops(model, dataset, config["device"], None, construct_transform(config))
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    started = time.perf_counter()
    _, valid_result = trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    test_result = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
    result = {
        "seed": seed,
        "valid_metric": valid_metric,
        "best_epoch": _best_epoch(trainer),
        "best_valid": {k: float(v) for k, v in valid_result.items()},
        "test": {k: float(v) for k, v in test_result.items()},
        "seconds": round(time.perf_counter() - started, 1),
        "torch_threads": torch.get_num_threads(),
    }
    return result, _split_items(dataset, valid_data, test_data)


def _best_epoch(trainer) -> int:
    # 1-based; fit() logs the best epoch but keeps only how many evaluations came after it
    return max(trainer.train_loss_dict) + 1 - trainer.cur_step


def _split_items(dataset, valid_data, test_data) -> dict:
    uid, iid = dataset.uid_field, dataset.iid_field
    items = {}
    for name, data in (("valid", valid_data), ("test", test_data)):
        feat = data._dataset.inter_feat
        users = dataset.id2token(uid, feat[uid].numpy())
        chosen = dataset.id2token(iid, feat[iid].numpy())
        items[name] = {str(u): int(i) for u, i in zip(users, chosen, strict=True)}
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=Path, required=True, help="ML-100K u.data")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder, not the repo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2020])
    parser.add_argument("--valid-metric", default="MRR@10", help="RecBole's default: MRR@10")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", type=Path, help="results as JSON")
    parser.add_argument("--split-out", type=Path, help="each user's valid/test item as JSON")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    write_inter(args.ratings, args.work)
    os.chdir(args.work)  # RecBole writes log/ and log_tensorboard/ into the working directory
    results = []
    for seed in args.seeds:
        result, split = run(args.work, seed, args.valid_metric, args.epochs)
        print(json.dumps(result), flush=True)
        results.append(result)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    if args.split_out:
        args.split_out.write_text(json.dumps(split) + "\n")


if __name__ == "__main__":
    main()

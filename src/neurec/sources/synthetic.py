"""A seeded generator of interaction logs with planted, learnable structure.

Three signals are planted, so that each model family has something to find:

* popularity: item weights follow a power law (a few items are very popular);
* taste: users and items have latent factors; affinity = user . item;
* sequence: items form short chains; with probability ``sequential_strength`` the next
  item is drawn from the successors of the user's most recent item. Only a model that
  reads the order of a history can exploit this; co-occurrence models (EASE) only see
  that chain items co-occur.

Each user's items are distinct (no repeats), timestamps increase per user.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from neurec.errors import ConfigError
from neurec.sources import SourceData


@dataclass(frozen=True)
class SyntheticConfig:
    n_users: int = 800
    n_items: int = 400
    min_length: int = 15
    mean_length: int = 40
    n_factors: int = 8
    popularity_exponent: float = 1.0
    taste_strength: float = 2.5
    sequential_strength: float = 0.6
    successors: int = 3
    seed: int = 7

    def __post_init__(self) -> None:
        checks = {
            "n_users": self.n_users >= 2,
            "n_items": self.n_items >= max(10, self.successors + 2),
            "min_length": 3 <= self.min_length <= self.mean_length,
            "mean_length": self.mean_length < self.n_items // 2,
            "n_factors": self.n_factors >= 1,
            "sequential_strength": 0.0 <= self.sequential_strength <= 1.0,
            "successors": self.successors >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(
                    f"parameter data.synthetic.{name}: invalid value {getattr(self, name)!r} "
                    "(need n_users >= 2, n_items >= 10, 3 <= min_length <= mean_length < "
                    "n_items/2, 0 <= sequential_strength <= 1, successors >= 1)"
                )


def config_from_options(options: Mapping[str, Any]) -> SyntheticConfig:
    given = dict(options.get("options") or {})
    known = {f.name for f in fields(SyntheticConfig)}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ConfigError(
            f"parameter data.synthetic: unknown key(s) {unknown} for the synthetic source; "
            f"expected some of {sorted(known)}"
        )
    return SyntheticConfig(**given)


def generate(config: SyntheticConfig) -> pd.DataFrame:
    """Generate the canonical interaction table (ids are 1-based, like MovieLens)."""
    rng = np.random.default_rng(config.seed)
    n_items = config.n_items
    popularity = 1.0 / np.arange(1, n_items + 1) ** config.popularity_exponent
    log_popularity = np.log(rng.permutation(popularity))
    user_factors = rng.normal(size=(config.n_users, config.n_factors))
    item_factors = rng.normal(size=(n_items, config.n_factors)) / np.sqrt(config.n_factors)
    # chains: item order[k] is followed by order[k+1 .. k+successors]
    order = rng.permutation(n_items)
    rank = np.empty(n_items, dtype=np.int64)
    rank[order] = np.arange(n_items)
    successor_offsets = np.arange(1, config.successors + 1)

    lengths = np.clip(
        rng.geometric(1.0 / (config.mean_length - config.min_length + 1), size=config.n_users)
        + config.min_length
        - 1,
        config.min_length,
        n_items // 2,
    )
    rows_user, rows_item, rows_time = [], [], []
    for user in range(config.n_users):
        logits = log_popularity + config.taste_strength * item_factors @ user_factors[user]
        seen = np.zeros(n_items, dtype=bool)
        items = np.empty(lengths[user], dtype=np.int64)
        for step in range(lengths[user]):
            candidates = None
            if step > 0 and rng.random() < config.sequential_strength:
                nxt = order[(rank[items[step - 1]] + successor_offsets) % n_items]
                nxt = nxt[~seen[nxt]]
                if len(nxt):
                    candidates = nxt
            if candidates is None:
                weights = np.exp(logits - logits.max()) * ~seen
                item = rng.choice(n_items, p=weights / weights.sum())
            else:
                item = rng.choice(candidates)
            items[step] = item
            seen[item] = True
        start = rng.integers(0, 10**6)
        times = start + np.cumsum(rng.integers(1, 3600, size=lengths[user]))
        rows_user.append(np.full(lengths[user], user + 1))
        rows_item.append(items + 1)
        rows_time.append(times)
    table = pd.DataFrame(
        {
            "user": np.concatenate(rows_user),
            "item": np.concatenate(rows_item),
            "timestamp": np.concatenate(rows_time),
        }
    )
    # interleave users by time, as a real log would be
    return table.sort_values("timestamp", kind="stable").reset_index(drop=True)


def load(options: Mapping[str, Any]) -> SourceData:
    return SourceData(interactions=generate(config_from_options(options)))

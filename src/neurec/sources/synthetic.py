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
import torch

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


USER_CHUNK = 1024  # users generated together: their [users, items] CDF is ~220 MB at 27k items


def generate(config: SyntheticConfig) -> pd.DataFrame:
    """Generate the canonical interaction table (ids are 1-based, like MovieLens).

    Vectorised over users, looping only over positions: users are taken in chunks of
    similar length (``USER_CHUNK``, longest first). Each step follows the chain with
    probability ``sequential_strength`` (a random unseen successor of the last item) and
    otherwise takes the user's next taste draw: draws from softmax(log popularity + taste)
    made in advance, with replacement, consumed in order, skipping items already seen.
    Skipping seen items of an i.i.d. stream is exact rejection sampling, so each such item
    follows the softmax over the user's unseen items, the same law as a fresh draw with the
    seen items masked out.
    """
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
    successors = order[(rank[:, None] + np.arange(1, config.successors + 1)) % n_items]
    lengths = np.clip(
        rng.geometric(1.0 / (config.mean_length - config.min_length + 1), size=config.n_users)
        + config.min_length
        - 1,
        config.min_length,
        n_items // 2,
    )
    taste = Taste(log_popularity, config.taste_strength * user_factors, item_factors)
    by_length = np.argsort(-lengths, kind="stable")
    sequences: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * config.n_users
    for start in range(0, config.n_users, USER_CHUNK):
        users = by_length[start : start + USER_CHUNK]
        chunk = _generate_chunk(rng, config, taste.cdf(users), lengths[users], successors)
        for user, items in zip(users, chunk, strict=True):
            sequences[user] = items
    items = np.concatenate(sequences)
    starts = rng.integers(0, 10**6, size=config.n_users)
    gaps = rng.integers(1, 3600, size=len(items))
    # per-user running sums of the gaps: one global cumsum minus what came before the user
    total = np.cumsum(gaps)
    before = np.concatenate([[0], total])[np.cumsum(lengths) - lengths]
    table = pd.DataFrame(
        {
            "user": np.repeat(np.arange(1, config.n_users + 1), lengths),
            "item": items + 1,
            "timestamp": np.repeat(starts - before, lengths) + total,
        }
    )
    # interleave users by time, as a real log would be
    return table.sort_values("timestamp", kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class Taste:
    """Each user's item distribution: softmax(log popularity + user . item)."""

    log_popularity: np.ndarray
    user_factors: np.ndarray  # already scaled by taste_strength
    item_factors: np.ndarray

    def cdf(self, users: np.ndarray) -> torch.Tensor:
        """Row-normalised cumulative weights ``[len(users), n_items]``. Float32 (torch sums
        in double) and torch for the dense part: this is most of the generator's time."""
        logits = torch.addmm(
            torch.as_tensor(self.log_popularity, dtype=torch.float32),
            torch.as_tensor(self.user_factors[users], dtype=torch.float32),
            torch.as_tensor(self.item_factors, dtype=torch.float32).T,
        )
        logits -= logits.max(dim=1, keepdim=True).values
        cdf = torch.cumsum(logits.exp_(), dim=1)
        return cdf.div_(cdf[:, -1:].clone())


def _generate_chunk(
    rng: np.random.Generator,
    config: SyntheticConfig,
    cdf: torch.Tensor,
    lengths: np.ndarray,
    successors: np.ndarray,
) -> list[np.ndarray]:
    """The item sequence of each user of one chunk (``cdf``: their taste distributions)."""
    n_users, n_items = cdf.shape
    longest = int(lengths.max())
    # enough taste draws for most users (repeats of their favourites are skipped); a user
    # who uses them all up gets a new row, drawn from the softmax over the items still
    # unseen (still exact: later repeats are skipped the same way), so it rarely happens twice
    width = 2 * longest + 16

    def draw(rows: np.ndarray, unseen: np.ndarray | None = None) -> np.ndarray:
        table = cdf[torch.as_tensor(rows)]
        if unseen is not None:
            weights = torch.diff(table, dim=1, prepend=torch.zeros(len(rows), 1, dtype=table.dtype))
            table = torch.cumsum(weights * torch.as_tensor(unseen), dim=1)
            table = table / table[:, -1:]
        uniforms = torch.as_tensor(rng.random((len(rows), width), dtype=np.float32))
        return torch.searchsorted(table, uniforms, right=True).clamp_(max=n_items - 1).numpy()

    everyone = np.arange(n_users)
    draws = draw(everyone)
    pointer = np.zeros(n_users, dtype=np.int64)
    seen = np.zeros((n_users, n_items), dtype=bool)
    out = np.zeros((n_users, longest), dtype=np.int64)
    for step in range(longest):
        active = everyone[lengths > step]
        item = np.full(len(active), -1, dtype=np.int64)
        if step > 0:
            follow = rng.random(len(active)) < config.sequential_strength
            chain = successors[out[active, step - 1]]  # [active, successors]
            free = ~seen[active[:, None], chain] & follow[:, None]
            # a uniform choice among the free successors: the one with the largest key
            keys = np.where(free, rng.random(chain.shape), -1.0)
            has = free.any(axis=1)
            item[has] = chain[has, keys.argmax(axis=1)[has]]
        todo = np.flatnonzero(item < 0)
        while len(todo):  # each remaining user's next unseen taste draw
            users = active[todo]
            spent = users[pointer[users] == width]
            if len(spent):
                draws[spent] = draw(spent, ~seen[spent])
                pointer[spent] = 0
            candidate = draws[users, pointer[users]]
            pointer[users] += 1
            fresh = ~seen[users, candidate]
            item[todo[fresh]] = candidate[fresh]
            todo = todo[~fresh]
        out[active, step] = item
        seen[active, item] = True
    return [out[row, : lengths[row]] for row in everyone]


def load(options: Mapping[str, Any]) -> SourceData:
    return SourceData(interactions=generate(config_from_options(options)))

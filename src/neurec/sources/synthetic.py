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


LOOP_CHUNK = 4096  # users stepped through together: their seen matrix is ~110 MB at 27k items
DENSE_CHUNK = 1024  # users whose [users, items] taste CDF is built at once: ~110 MB at 27k items


def generate(config: SyntheticConfig) -> pd.DataFrame:
    """Generate the canonical interaction table (ids are 1-based, like MovieLens).

    Vectorised over users, looping only over positions: users are taken in chunks of
    similar length (``LOOP_CHUNK``, longest first). Each step follows the chain with
    probability ``sequential_strength`` (a random unseen successor of the last item) and
    otherwise takes the next item of the user's taste order that is still unseen. The taste
    order is a draw without replacement of all the user's items from softmax(log
    popularity + taste) (Plackett-Luce, see ``Taste.orders``); by its memorylessness the
    first unseen item of it follows the softmax over the user's unseen items, whatever the
    chain took before, the same law as a fresh draw with the seen items masked out.
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
    sequences: list[np.ndarray] = [np.empty(0, dtype=np.int32)] * config.n_users
    for start in range(0, config.n_users, LOOP_CHUNK):
        users = by_length[start : start + LOOP_CHUNK]
        chunk = _generate_chunk(rng, config, taste, users, lengths[users], successors)
        for user, items in zip(users, chunk, strict=True):
            sequences[user] = items
    items = np.concatenate(sequences)
    starts = rng.integers(0, 10**6, size=config.n_users)
    gaps = rng.integers(1, 3600, size=len(items))
    # per-user running sums of the gaps: one global cumsum minus what came before the user
    total = np.cumsum(gaps)
    before = np.concatenate([[0], total])[np.cumsum(lengths) - lengths]
    timestamps = np.repeat(starts - before, lengths) + total
    # interleave users by time, as a real log would be (stable: a user's ties keep order)
    by_time = np.argsort(timestamps, kind="stable")
    users = np.repeat(np.arange(1, config.n_users + 1), lengths)
    return pd.DataFrame(
        {
            "user": users[by_time],
            "item": items.astype(np.int64)[by_time] + 1,
            "timestamp": timestamps[by_time],
        }
    )


@dataclass(frozen=True)
class Taste:
    """Each user's item distribution: softmax(log popularity + user . item)."""

    log_popularity: np.ndarray
    user_factors: np.ndarray  # already scaled by taste_strength
    item_factors: np.ndarray

    def logits(self, users: np.ndarray, out: torch.Tensor) -> torch.Tensor:
        """``[len(users), n_items]`` float32 logits, into ``out`` (one buffer reused: a
        fresh 100 MB tensor per chunk costs more in page faults than the product)."""
        return torch.addmm(
            torch.as_tensor(self.log_popularity, dtype=torch.float32),
            torch.as_tensor(self.user_factors[users], dtype=torch.float32),
            torch.as_tensor(self.item_factors, dtype=torch.float32).T,
            out=out[: len(users)],
        )

    def orders(self, rng: np.random.Generator, users: np.ndarray, need: np.ndarray) -> np.ndarray:
        """The first ``need[r]`` items of each user's taste order (row ``r``; -1 beyond).

        The order of first appearance in i.i.d. draws from the softmax is a draw without
        replacement (Plackett-Luce); ``2 * need + 16`` inverse-CDF draws give most users
        their whole prefix. A user whose draws repeat too much (a peaked taste) gets the rest
        of the order from Gumbel keys over the items not yet drawn: given its first items,
        the rest of a Plackett-Luce order is one over the remaining items, so it is exact.
        Dense work in place, in torch (matrix product, cumulative sum in double) and numpy
        (SIMD exp and log): this is most of the generator's time.
        """
        n_items = len(self.log_popularity)
        out = np.full((len(users), int(need.max())), -1, dtype=np.int32)
        buffer = torch.empty(min(DENSE_CHUNK, len(users)), n_items)
        for start in range(0, len(users), DENSE_CHUNK):
            rows = slice(start, start + DENSE_CHUNK)
            cdf = self.logits(users[rows], buffer)
            cdf -= cdf.amax(dim=1, keepdim=True)
            np.exp(cdf.numpy(), out=cdf.numpy())
            cdf.cumsum_(dim=1)
            width = 2 * int(need[rows].max()) + 16
            uniforms = torch.as_tensor(rng.random((len(cdf), width), dtype=np.float32))
            draws = torch.searchsorted(cdf, uniforms.mul_(cdf[:, -1:]), right=True)
            draws = draws.clamp_(max=n_items - 1).numpy()
            count = _first_appearances(draws, need[rows], out[rows])
            short = np.flatnonzero(count < need[rows])
            if len(short):
                rest = out[start + short]
                keys = self.logits(users[rows][short], buffer)
                _complete(rng, keys, count[short], need[rows][short], rest)
                out[start + short] = rest
        return out


def _complete(
    rng: np.random.Generator,
    keys: torch.Tensor,
    count: np.ndarray,
    need: np.ndarray,
    out: np.ndarray,
) -> None:
    """Rows of ``out`` that have ``count`` items of ``need``: the rest by Gumbel keys on the
    logits ``keys`` (float32 like the inverse-CDF draws: both resolve probabilities down to
    ~1e-7)."""
    noise = rng.random(keys.shape, dtype=np.float32)
    with np.errstate(divide="ignore"):  # a uniform of 0: key -inf, never drawn (probability 0)
        np.log(noise, out=noise)
        np.negative(noise, out=noise)
        np.log(noise, out=noise)
    keys -= torch.as_tensor(noise)  # Gumbel noise: -log(Exp(1))
    taken = np.arange(out.shape[1]) < count[:, None]
    keys[np.nonzero(taken)[0], out[taken]] = -torch.inf
    top = torch.topk(keys, int((need - count).max()), dim=1).indices.numpy()
    for row, (have, want) in enumerate(zip(count, need, strict=True)):
        out[row, have:want] = top[row, : want - have]


def _first_appearances(draws: np.ndarray, need: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Each row's distinct values in order of first appearance, at most ``need[r]`` of them,
    written into ``out``; how many each row got."""
    by_value = np.argsort(draws, axis=1, kind="stable")  # equal values keep draw order
    ordered = np.take_along_axis(draws, by_value, axis=1)
    first = np.ones(draws.shape, dtype=bool)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    keep = np.empty_like(first)
    np.put_along_axis(keep, by_value, first, axis=1)
    position = np.cumsum(keep, axis=1) - 1
    keep &= position < need[:, None]
    rows = np.nonzero(keep)[0]
    out[rows, position[keep]] = draws[keep]
    return keep.sum(axis=1)


def _generate_chunk(
    rng: np.random.Generator,
    config: SyntheticConfig,
    taste: Taste,
    users: np.ndarray,
    lengths: np.ndarray,
    successors: np.ndarray,
) -> list[np.ndarray]:
    """The item sequence of each user of one chunk (``lengths`` in decreasing order)."""
    n_users, n_items = len(users), config.n_items
    longest = int(lengths[0])
    # a user's taste order is consumed one item per taste step, plus the items the chain
    # took first (skipped), so never beyond the user's length
    orders = taste.orders(rng, users, lengths)
    pointer = np.zeros(n_users, dtype=np.int64)
    seen = np.zeros((n_users, n_items), dtype=bool)
    out = np.zeros((n_users, longest), dtype=np.int32)
    # users still active at a step: a prefix, as lengths decrease
    active_count = n_users - np.cumsum(np.bincount(lengths, minlength=longest + 1))
    for step in range(longest):
        n = int(active_count[step])
        active = np.arange(n)
        item = np.full(n, -1, dtype=np.int32)
        if step > 0:
            follow = rng.random(n) < config.sequential_strength
            chain = successors[out[:n, step - 1]]  # [active, successors]
            free = ~seen[active[:, None], chain] & follow[:, None]
            # a uniform choice among the free successors: the one with the largest key
            keys = np.where(free, rng.random(chain.shape), -1.0)
            has = free.any(axis=1)
            item[has] = chain[has, keys.argmax(axis=1)[has]]
        todo = np.flatnonzero(item < 0)
        while len(todo):  # each remaining user's next unseen taste item
            candidate = orders[todo, pointer[todo]]
            pointer[todo] += 1
            fresh = ~seen[todo, candidate]
            item[todo[fresh]] = candidate[fresh]
            todo = todo[~fresh]
        out[:n, step] = item
        seen[active, item] = True
    return [out[row, : lengths[row]] for row in range(n_users)]


def load(options: Mapping[str, Any]) -> SourceData:
    return SourceData(interactions=generate(config_from_options(options)))

"""Evaluation protocols: candidate sets, per-user metrics and the validation callback.

Protocol names say what was measured, so that columns are never mixed:

* ``full``: each target ranked against every item, the user's history excluded;
* ``sampled_uniform_<N>`` / ``sampled_popularity_<N>``: against N negatives drawn once
  (seeded, stored) uniformly or in proportion to training popularity, never an item the
  user interacted with;
* ``sampled_given_<N>``: against negatives a source supplied (the NCF authors' files).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from neurec.errors import ConfigError, DataError
from neurec.interactions import Histories, Interactions
from neurec.metrics import ranking_metrics
from neurec.models.base import Recommender, check_positive
from neurec.sampling import repeated_in_row, sample_candidate_sets
from neurec.training import SELECTION_METRIC

PROTOCOL_PATTERN = re.compile(r"^(full|sampled_(uniform|popularity|given)_(\d+))$")


@dataclass(frozen=True)
class Protocol:
    name: str
    sampler: str | None  # None for full ranking
    n_negatives: int = 0

    @property
    def is_full(self) -> bool:
        return self.sampler is None

    def describe(self) -> str:
        if self.is_full:
            return "full ranking: every item, the user's train+validation history excluded"
        how = {
            "uniform": "drawn uniformly",
            "popularity": "drawn in proportion to training popularity",
            "given": "as given by the source files",
        }[self.sampler]
        return f"the test item(s) ranked among {self.n_negatives} negatives {how}"


FULL = Protocol("full", None)


def parse_protocol(name: str) -> Protocol:
    """``full`` or ``sampled_<sampler>_<N>``; a bad name raises ``ValueError("protocols: ...")``."""
    match = PROTOCOL_PATTERN.match(str(name))
    if not match:
        raise ValueError(
            f"protocols: unknown protocol {name!r}; expected 'full' or "
            "'sampled_<uniform|popularity|given>_<N>' (e.g. sampled_uniform_99)"
        )
    if match.group(1) == "full":
        return FULL
    n_negatives = int(match.group(3))
    if n_negatives < 1:
        raise ValueError(f"protocols: {name!r} needs at least one negative")
    return Protocol(name, match.group(2), n_negatives)


@dataclass(frozen=True)
class EvaluationConfig:
    """The ``evaluation`` parameters block (``conf/base/parameters.yml``).

    ``protocols`` may be given as names (YAML) or :class:`Protocol` objects; they are held
    as protocols. ``ks`` always includes 10 (NDCG@10 selects checkpoints and anchors the
    report), sorted and without repeats.
    """

    # full ranking only: the one protocol whose figures do not depend on sampled negatives
    protocols: tuple[Protocol, ...] = (FULL,)
    # the cut-offs papers report (HR/NDCG@1, 5, 10, 20)
    ks: tuple[int, ...] = (1, 5, 10, 20)
    # any fixed seed: sampled candidate sets are drawn once with it
    seed: int = 2024
    # users scored per batch: [1024, n_items] scores stay small on a CPU
    batch_size: int = 1024

    def __post_init__(self) -> None:
        protocols = tuple(
            p if isinstance(p, Protocol) else parse_protocol(p) for p in self.protocols
        )
        if not protocols:
            raise ValueError("protocols: expected at least one protocol")
        names = [p.name for p in protocols]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"protocols: {repeated[0]!r} is listed more than once")
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"ks: expected positive cut-offs, got {list(self.ks)}")
        check_positive("seed", self.seed, allow_zero=True)
        check_positive("batch_size", self.batch_size)
        object.__setattr__(self, "protocols", protocols)
        object.__setattr__(self, "ks", tuple(sorted({*self.ks, 10})))


@dataclass(frozen=True)
class EvaluationData:
    """What the evaluator needs, in index space: inputs (history) and targets per user."""

    history: Histories  # train + validation, time-ordered
    targets: Histories  # test items
    train_item_counts: np.ndarray

    @classmethod
    def build(
        cls, train: Interactions, validation: Interactions, test: Interactions
    ) -> EvaluationData:
        return cls(
            history=train.histories.append(validation.histories),
            targets=test.histories,
            train_item_counts=train.item_counts(),
        )

    @property
    def users(self) -> np.ndarray:
        return np.flatnonzero(self.targets.lengths() > 0)


def build_candidates(
    data: EvaluationData,
    config: EvaluationConfig,
    given: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Draw every sampled protocol's negatives once (seeded): a table protocol, user, item."""
    users = data.users
    interacted = data.history.append(data.targets).matrix()
    rng = np.random.default_rng(config.seed)
    frames = []
    for protocol in config.protocols:
        if protocol.is_full:
            continue
        if protocol.sampler == "given":
            frame = _given_candidates(given, protocol)
        else:
            weights = data.train_item_counts + 1.0 if protocol.sampler == "popularity" else None
            negatives = sample_candidate_sets(users, interacted, protocol.n_negatives, weights, rng)
            frame = pd.DataFrame(
                {"user": np.repeat(users, protocol.n_negatives), "item": negatives.reshape(-1)}
            )
        frame.insert(0, "protocol", protocol.name)
        frames.append(frame)
    names = [p.name for p in config.protocols if not p.is_full]
    if not frames:
        frames = [pd.DataFrame({"protocol": [], "user": [], "item": []})]
    table = pd.concat(frames, ignore_index=True)
    # compact: 100 negatives for each of 138k users and two protocols are 28 M rows
    return table.astype({"protocol": pd.CategoricalDtype(names), "user": "int32", "item": "int32"})


def _given_candidates(given: pd.DataFrame | None, protocol: Protocol) -> pd.DataFrame:
    if given is None or given.empty:
        raise ConfigError(
            f"parameter evaluation.protocols: {protocol.name!r} needs negatives from the source "
            "(e.g. data.source: ncf_paper with a .test.negative file), but the source gave none"
        )
    sizes = given.groupby("user").size()
    if (sizes != protocol.n_negatives).any():
        raise DataError(
            f"evaluation: protocol {protocol.name!r} expects {protocol.n_negatives} given "
            f"negatives per user, found between {sizes.min()} and {sizes.max()}"
        )
    return given[["user", "item"]].reset_index(drop=True)


def _candidate_matrix(candidates: pd.DataFrame, protocol: str, users: np.ndarray) -> np.ndarray:
    part = candidates[candidates["protocol"] == protocol]
    if part.empty:
        raise DataError(f"evaluation: no stored candidates for protocol {protocol!r}")
    part = part.sort_values("user", kind="stable")
    present = part["user"].unique()
    if not np.array_equal(np.sort(present), users):
        raise DataError(
            f"evaluation: the stored candidates of {protocol!r} do not cover the test users; "
            "re-run the split stage"
        )
    n = len(part) // len(users)
    return part["item"].to_numpy(dtype=np.int64).reshape(len(users), n)


def _padded_targets(targets: Histories, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    width = int(targets.lengths(users).max())
    items = targets.padded(users, width, shift=0)
    valid = np.arange(width)[None, :] >= (width - targets.lengths(users))[:, None]
    return items, valid


def _item_mask(history: Histories, users: np.ndarray) -> torch.Tensor:
    """Boolean [len(users), n_items] marking each user's items in ``history``."""
    mask = torch.zeros((len(users), history.n_items), dtype=torch.bool)
    rows, items = history.flat(users)
    mask[torch.as_tensor(rows), torch.as_tensor(items)] = True
    return mask


def score_protocol(
    model: Recommender,
    history: Histories,
    targets: Histories,
    users: np.ndarray,
    protocol: Protocol,
    ks: tuple[int, ...],
    batch_size: int,
    negatives: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per-user metrics of ``model`` for ``users`` under one protocol (batched)."""
    per_batch: list[dict[str, torch.Tensor]] = []
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        if protocol.is_full:
            scores = model.score(batch, history)
            is_valid = ~_item_mask(history, batch)
            is_target = _item_mask(targets, batch)
        else:
            target_items, target_valid = _padded_targets(targets, batch)
            negs = negatives[start : start + len(batch)]
            items = np.concatenate([target_items, negs], axis=1)
            # a given negative equal to a target, or to an earlier negative, is the same item
            # ranked once (as the NCF authors' evaluation does through its item -> score map)
            known_targets = np.where(target_valid, target_items, -1)[:, None, :]
            duplicate = (negs[:, :, None] == known_targets).any(axis=2) | repeated_in_row(negs)
            scores = model.score(batch, history, items)
            is_target = torch.as_tensor(
                np.concatenate([target_valid, np.zeros_like(negs, dtype=bool)], axis=1)
            )
            is_valid = torch.as_tensor(np.concatenate([target_valid, ~duplicate], axis=1))
        device = scores.device
        metrics = ranking_metrics(scores.float(), is_target.to(device), is_valid.to(device), ks)
        if protocol.is_full:
            top = scores.masked_fill(~is_valid.to(device), -torch.inf).topk(max(ks), dim=1)
            metrics["_top"] = top.indices
        per_batch.append({k: v.cpu() for k, v in metrics.items()})
    return {k: torch.cat([b[k] for b in per_batch]).numpy() for k in per_batch[0]}


def evaluate(
    model: Recommender,
    data: EvaluationData,
    candidates: pd.DataFrame,
    config: EvaluationConfig,
) -> tuple[pd.DataFrame, dict[str, dict[str, float]]]:
    """Test metrics under every protocol: a per-user table and the means per protocol.

    Full ranking also reports ``Coverage@K``: the share of the catalogue that appears in
    at least one user's top K.
    """
    users = data.users
    frames, summary = [], {}
    for protocol in config.protocols:
        negatives = (
            None if protocol.is_full else _candidate_matrix(candidates, protocol.name, users)
        )
        per_user = score_protocol(
            model,
            data.history,
            data.targets,
            users,
            protocol,
            config.ks,
            config.batch_size,
            negatives,
        )
        top = per_user.pop("_top", None)
        frame = pd.DataFrame(per_user)
        frame.insert(0, "user", users)
        frame.insert(0, "protocol", protocol.name)
        frames.append(frame)
        means = {k: float(np.nanmean(v)) for k, v in per_user.items()}
        if top is not None:
            for k in config.ks:
                means[f"Coverage@{k}"] = len(np.unique(top[:, :k])) / data.history.n_items
        summary[protocol.name] = means
    return pd.concat(frames, ignore_index=True), summary


def make_validator(
    train: Interactions,
    validation: Interactions,
    ks: Iterable[int] = (10,),
    batch_size: int = 1024,
):
    """Full-ranking metrics on the validation items, history = train (for early stopping)."""
    history = train.histories
    targets = validation.histories
    users = np.flatnonzero(targets.lengths() > 0)
    if len(users) == 0:
        return None
    ks = tuple(sorted({*ks, int(SELECTION_METRIC.split("@")[1])}))

    def validate(model: Recommender) -> dict[str, float]:
        per_user = score_protocol(model, history, targets, users, FULL, ks, batch_size)
        return {
            name: float(np.nanmean(values))
            for name, values in per_user.items()
            if name.startswith(("NDCG", "HR"))
        }

    return validate

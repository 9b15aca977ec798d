"""The one training loop for PyTorch models, and the base class they extend.

A neural model supplies four things (its module, its batches, its loss, its scoring);
the loop supplies the rest: seeding, device placement, optimiser, per-epoch progress
lines (loss, validation metric, time, ETA), early stopping on the validation metric and
restoring the best epoch's weights. Checkpoints are chosen on validation, never on test.

Given a :class:`Checkpoint`, the loop also saves its whole progress after every epoch
(weights, optimiser, both random generators, early-stopping state, history) and, when
the file is there and was written by the same training (same model, config and data),
continues from it: an interrupted run resumed reaches the same weights as one that was
never interrupted. The file is removed when training completes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import time
from abc import abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from neurec.errors import ConfigError
from neurec.files import torch_save_atomically
from neurec.interactions import Histories, Interactions
from neurec.models.base import (
    FitReport,
    Recommender,
    Validator,
    check_choice,
    check_positive,
)

logger = logging.getLogger(__name__)

SELECTION_METRIC = "NDCG@10"
DEVICES = ("auto", "cpu", "cuda")
OPTIMIZERS = ("adam", "adamw", "sgd")


@dataclass
class DistributedConfig:
    """``<model>.distributed``: data-parallel training (``neurec.distributed``)."""

    # worker processes on this machine; > 1: the train node starts them (gloo on the CPU,
    # NCCL on CUDA), each trains on 1/world_size of every batch, gradients averaged
    world_size: int = 1
    # a worker waiting longer than this on the others (a collective, the rendezvous)
    # fails the run instead of hanging
    timeout_seconds: float = 600.0

    def __post_init__(self) -> None:
        check_positive("world_size", self.world_size)
        check_positive("timeout_seconds", self.timeout_seconds)


@dataclass
class TorchConfig:
    """Training knobs shared by every neural model (each model's config extends it).

    Every field's default is stated here or in the model family's config, with its reason;
    ``conf/base/parameters_<model>.yml`` sets only what the project changes.
    """

    # epochs, batch_size, learning_rate, patience: generic values for a model without a
    # recipe of its own; each registered family's config sets its paper's
    epochs: int = 20  # at most: early stopping on validation NDCG@10 usually ends sooner
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 0.0  # no L2 unless a model's recipe has one (Mult-DAE)
    optimizer: str = "adam"  # adam | adamw | sgd: every model's paper trains with Adam
    patience: int = 3  # epochs without a better validation NDCG@10 before stopping
    seed: int = 42  # any fixed seed: weights, batches and negatives are reproducible
    device: str = "auto"  # auto (a GPU when present, else the CPU) | cpu | cuda
    # after early stopping chose the epoch count on validation, train the model anew (same
    # seed) on train + validation for that many epochs and keep that one for test and
    # serving: the users' latest known interaction then shapes their embedding, as in
    # papers that train on all but the test item. false: the model of the best epoch
    refit: bool = False
    distributed: DistributedConfig = field(default_factory=DistributedConfig)

    def __post_init__(self) -> None:
        check_positive("epochs", self.epochs)
        check_positive("batch_size", self.batch_size)
        check_positive("learning_rate", self.learning_rate)
        check_positive("weight_decay", self.weight_decay, allow_zero=True)
        check_positive("patience", self.patience)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("device", self.device, DEVICES)
        if not isinstance(self.distributed, DistributedConfig):
            raise ValueError(
                f"distributed: expected a block (world_size: 2), got {self.distributed!r}"
            )


@dataclass
class TrainingConfig:
    """The ``training`` parameters block: how the loop treats interrupted runs."""

    # save a checkpoint every epoch and continue from it after a kill (same config and data)
    resume: bool = True


def resolve_device(requested: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; ``cuda`` without a GPU is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("parameter device: 'cuda' requested but no CUDA device is available")
    return torch.device(requested)


class TorchRecommender(Recommender):
    """Base for neural models: build a module, yield batches, compute a loss, score."""

    config: TorchConfig
    # positions in a training batch of tensors shared by all its rows (RNN's extra sampled
    # negatives), which data-parallel training gives whole to every process
    shared_batch_tensors: ClassVar[tuple[int, ...]] = ()

    def __init__(self, config: TorchConfig, n_users: int, n_items: int) -> None:
        super().__init__(config, n_users, n_items)
        torch.manual_seed(config.seed)  # weight init is part of the seeded run
        self.module = self.build_module()

    @abstractmethod
    def build_module(self) -> nn.Module:
        """The network, on the CPU; the loop moves it to the training device."""

    @abstractmethod
    def training_batches(
        self, train: Interactions, rng: np.random.Generator
    ) -> Iterator[tuple[torch.Tensor, ...]]:
        """One epoch of batches (CPU tensors), built with tensor/array ops, seeded by rng."""

    @abstractmethod
    def batch_loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Scalar loss of one batch (already on the module's device)."""

    @abstractmethod
    def score_batch(
        self, users: torch.Tensor, histories: Histories, items: torch.Tensor | None
    ) -> torch.Tensor:
        """Scores for a batch of users, called in eval mode without gradients."""

    def make_optimizer(self) -> torch.optim.Optimizer:
        cfg = self.config
        params = self.module.parameters()
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        optimizer_class = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        return optimizer_class(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)

    @property
    def device(self) -> torch.device:
        # derived from the weights, never stored: moving the module moves the model
        return next(self.module.parameters()).device

    def fit(
        self,
        train: Interactions,
        validator: Validator | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> FitReport:
        return train_loop(self, train, validator, checkpoint)

    @torch.no_grad()
    def score(
        self, users: np.ndarray, histories: Histories, items: np.ndarray | None = None
    ) -> torch.Tensor:
        was_training = self.module.training
        self.module.eval()
        try:
            device = self.device
            users_t = torch.as_tensor(users, dtype=torch.long, device=device)
            items_t = None if items is None else torch.as_tensor(items, device=device)
            return self.score_batch(users_t, histories, items_t)
        finally:
            self.module.train(was_training)

    def state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.module.state_dict().items()}

    def load_state(self, state: Mapping[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)

    def training_state(self) -> dict[str, Any]:
        """What training changes besides the weights (Mult-VAE's annealing clock), for resume.

        Plain Python values and tensors only; the default model has none.
        """
        return {}

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`training_state` returned."""


class Checkpoint:
    """One training's progress file: saved after every epoch, read to resume, then removed.

    ``key`` says which training wrote it (:func:`training_key`: model, config, data); a
    file with another key is never resumed from, so a changed parameter or data set
    starts afresh (and the log says what changed).
    """

    def __init__(self, path: str | Path, key: Mapping[str, str]) -> None:
        self.path = Path(path)
        self.key = dict(key)

    def load(self, model_name: str) -> dict[str, Any] | None:
        """The saved progress when it belongs to this training, else None (logged why)."""
        if not self.path.exists():
            return None
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
            saved_key = saved["key"]
        except Exception as error:  # any unreadable file: train afresh rather than guess
            logger.warning(
                "%s: checkpoint %s is unreadable (%s); starting fresh", model_name, self.path, error
            )
            return None
        changed = [
            k for k in sorted({*self.key, *saved_key}) if saved_key.get(k) != self.key.get(k)
        ]
        if changed:
            logger.info(
                "%s: checkpoint %s was written with a different %s; starting fresh",
                model_name,
                self.path,
                " and ".join(changed),
            )
            return None
        return saved

    def save(self, progress: Mapping[str, Any]) -> None:
        torch_save_atomically({"key": self.key, **progress}, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def training_key(
    model: Recommender,
    data: tuple[Interactions, ...],
    pretrained: Mapping[str, Recommender] | None = None,
) -> dict[str, str]:
    """What makes two trainings the same: model name, config and sizes, and the data.

    ``data``: the interactions training sees (train and validation); ``pretrained``: the
    models whose weights it starts from (their weights count as data).
    """
    config = {"config": dataclasses.asdict(model.config), "shape": [model.n_users, model.n_items]}
    key = {
        "model": model.name,
        "config": _digest([json.dumps(config, sort_keys=True, default=str)]),
        "data": _digest([array for part in data for array in (part.user, part.item)]),
    }
    if pretrained:
        key["pretrained models"] = _digest(
            sorted(pretrained)
            + [t for name in sorted(pretrained) for t in pretrained[name].state().values()]
        )
    return key


def _digest(parts: list[str | np.ndarray | torch.Tensor]) -> str:
    hasher = hashlib.blake2b(digest_size=16)
    for part in parts:
        if isinstance(part, torch.Tensor):
            part = part.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy()
        if isinstance(part, np.ndarray):
            hasher.update(f"{part.dtype}{part.shape}".encode())
            hasher.update(np.ascontiguousarray(part).data)
        else:
            hasher.update(part.encode())
    return hasher.hexdigest()


def process_group() -> tuple[int, int]:
    """``(rank, world_size)`` of this process: ``(0, 1)`` unless torch.distributed is set up."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class BatchLoss(nn.Module):
    """A model's ``batch_loss`` as the forward of one module that holds its network.

    Models reach their network through helpers besides its forward (``item_scores``,
    embeddings); wrapped in :class:`DistributedDataParallel` this module runs all of
    them inside DDP's forward, so DDP's gradient hooks see every use of every weight.
    """

    def __init__(self, model: TorchRecommender) -> None:
        super().__init__()
        self.network = model.module
        self.model = model  # a Recommender, not a module: not registered, no weights twice

    def forward(self, *batch: torch.Tensor) -> torch.Tensor:
        return self.model.batch_loss(batch)


def shard_batch(
    batch: tuple[torch.Tensor, ...], rank: int, world_size: int, shared: tuple[int, ...] = ()
) -> tuple[tuple[torch.Tensor, ...], float]:
    """This rank's rows of a global batch, and the weight of its loss.

    Rank r gets rows ``[N r / W, N (r + 1) / W)``; tensors at ``shared`` positions go whole
    to every rank. The weight ``W n_r / N`` makes DDP's mean of the ranks' gradients the
    gradient of the global batch's loss for any loss that is a mean over rows (exactly;
    per-row losses averaged over a varying number of positions per row, as sequence
    models' are, come out weighted per row instead of per position). A rank left
    without rows (a batch smaller than W) computes the loss of row 0 with weight 0.
    """
    rows = batch[0].shape[0]
    start, stop = rows * rank // world_size, rows * (rank + 1) // world_size
    weight = (stop - start) * world_size / rows
    if stop == start:
        start, stop = 0, 1
    part = tuple(t if i in shared else t[start:stop] for i, t in enumerate(batch))
    return part, weight


def broadcast_from_first(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (a no-op in one process)."""
    if process_group()[1] == 1:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


class EarlyStopping:
    """The best epoch on validation NDCG@10 so far, its weights, and when to stop.

    Without validation every epoch is the best (training keeps the last one) and runs its
    whole budget. Used by every model that trains in epochs (the loop below, iALS sweeps).
    """

    def __init__(self, patience: int, validated: bool) -> None:
        self.patience = patience
        self.validated = validated
        self.best_value = -math.inf
        self.best_epoch = 0
        self.epochs_since_best = 0
        self.best_state: dict[str, torch.Tensor] | None = None

    def update(self, epoch: int, metrics: Mapping[str, float], model: Recommender) -> bool:
        """Record an epoch's validation metrics; True (and its weights kept) if it is the best."""
        value = metrics.get(SELECTION_METRIC, -math.inf)
        if self.validated and not value > self.best_value:  # NaN never improves
            self.epochs_since_best += 1
            return False
        self.best_value, self.best_epoch, self.epochs_since_best = value, epoch, 0
        self.best_state = model.state()
        return True

    @property
    def stop(self) -> bool:
        return self.validated and self.epochs_since_best >= self.patience


def train_loop(
    model: TorchRecommender,
    train: Interactions,
    validator: Validator | None,
    checkpoint: Checkpoint | None = None,
) -> FitReport:
    """Epochs with progress lines, early stopping on validation NDCG@10, best weights kept.

    With ``checkpoint``, progress is saved after every epoch but the last, training
    resumes from the file when it belongs to this training, and the file is removed at
    the end.

    Run in each process of a torch.distributed group of ``W`` > 1 (``neurec.distributed``),
    it trains data-parallel: every rank draws the same epoch of batches from the same seed
    and takes 1/W of each batch's rows (:func:`shard_batch`), so W processes with
    ``batch_size`` B take the optimiser steps of one process with B; the loss runs through
    :class:`DistributedDataParallel`, which averages the gradients. Rank 0 alone validates
    (the metrics are broadcast, so early stopping stops every rank at the same epoch),
    logs, reads and writes the checkpoint.
    """
    cfg = model.config
    rank, world_size = process_group()
    first = rank == 0
    device = resolve_device(cfg.device)
    if world_size > 1 and device.type == "cuda":  # one GPU per process of this machine
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    # ranks differ only in dropout and other noise drawn by torch while training
    torch.manual_seed(cfg.seed + rank)
    rng = np.random.default_rng(cfg.seed)  # the batches: the same on every rank
    model.module.to(device)
    optimizer = model.make_optimizer()
    if world_size > 1:
        step_loss: nn.Module | Any = DistributedDataParallel(
            BatchLoss(model),
            device_ids=[device] if device.type == "cuda" else None,
            find_unused_parameters=True,  # a model may leave a weight out of some losses
        )
    else:
        step_loss = BatchLoss(model)
    report = FitReport()
    stopper = EarlyStopping(cfg.patience, validated=validator is not None)
    first_epoch, seconds_before = 1, 0.0
    saved = checkpoint.load(model.name) if checkpoint is not None and first else None
    saved = broadcast_from_first(saved)
    if saved is not None:
        model.load_state(saved["weights"])
        optimizer.load_state_dict(saved["optimizer"])
        rng.bit_generator.state = saved["numpy_rng"]
        torch.set_rng_state(saved["torch_rng"][rank])
        if device.type == "cuda" and saved["cuda_rng"] is not None:
            torch.cuda.set_rng_state_all(saved["cuda_rng"])
        model.load_training_state(saved["training_state"])
        stopper.best_value, stopper.best_epoch = saved["best_value"], saved["best_epoch"]
        stopper.epochs_since_best, report.history = saved["epochs_since_best"], saved["history"]
        stopper.best_state = (
            saved["best_state"] if saved["best_state"] is not None else model.state()
        )
        first_epoch, seconds_before = saved["epoch"] + 1, saved["seconds"]
        if first:
            logger.info(
                "%s: resuming from checkpoint %s at epoch %d/%d",
                model.name,
                checkpoint.path,
                saved["epoch"],
                cfg.epochs,
            )
    started = time.perf_counter() - seconds_before
    for epoch in range(first_epoch, cfg.epochs + 1):
        epoch_start = time.perf_counter()
        model.module.train()
        loss_sum, n_batches = torch.zeros((), device=device), 0
        for batch in model.training_batches(train, rng):
            weight = 1.0
            if world_size > 1:
                batch, weight = shard_batch(batch, rank, world_size, model.shared_batch_tensors)
            batch = tuple(t.to(device, non_blocking=True) for t in batch)
            loss = step_loss(*batch) * weight
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
            n_batches += 1
        if world_size > 1:  # the global batches' losses: the mean of the ranks' weighted ones
            dist.all_reduce(loss_sum)
            loss_sum /= world_size
        mean_loss = float(loss_sum) / max(1, n_batches)
        if not math.isfinite(mean_loss):
            raise FloatingPointError(
                f"{model.name}: training loss became {mean_loss} at epoch {epoch}; "
                "lower learning_rate or check the data"
            )
        train_seconds = time.perf_counter() - epoch_start
        metrics = validator(model) if validator is not None and first else {}
        metrics = broadcast_from_first(metrics)
        entry = {"epoch": epoch, "loss": mean_loss, "seconds": train_seconds}
        entry.update({f"val_{k}": float(v) for k, v in metrics.items()})
        report.history.append(entry)
        improved = stopper.update(epoch, metrics, model)
        if checkpoint is not None and not stopper.stop and epoch < cfg.epochs:
            torch_rng = torch.get_rng_state()
            torch_rngs = [torch_rng] * world_size
            if world_size > 1:
                dist.all_gather_object(torch_rngs, torch_rng)
            if first:
                checkpoint.save(
                    {
                        "epoch": epoch,
                        "seconds": time.perf_counter() - started,
                        "weights": model.module.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "numpy_rng": rng.bit_generator.state,
                        "torch_rng": torch_rngs,  # one per rank
                        "cuda_rng": torch.cuda.get_rng_state_all()
                        if device.type == "cuda"
                        else None,
                        "training_state": model.training_state(),
                        "best_value": stopper.best_value,
                        "best_epoch": stopper.best_epoch,
                        # None: the weights
                        "best_state": None if improved else stopper.best_state,
                        "epochs_since_best": stopper.epochs_since_best,
                        "history": report.history,
                    }
                )
        elapsed = time.perf_counter() - started
        eta = elapsed / epoch * (cfg.epochs - epoch)
        if first:
            logger.info(
                "%s epoch %d/%d loss %.4f val %s %s (%.1fs train, %.1fs total, ETA <= %.0fs)%s",
                model.name,
                epoch,
                cfg.epochs,
                mean_loss,
                SELECTION_METRIC,
                f"{metrics[SELECTION_METRIC]:.4f}" if SELECTION_METRIC in metrics else "n/a",
                train_seconds,
                time.perf_counter() - epoch_start,
                eta,
                " *" if improved and validator is not None else "",
            )
        if stopper.stop:
            if first:
                logger.info(
                    "%s: no validation gain for %d epochs; stopping, best epoch %d (%s %.4f)",
                    model.name,
                    cfg.patience,
                    stopper.best_epoch,
                    SELECTION_METRIC,
                    stopper.best_value,
                )
            break
    model.load_state(stopper.best_state)
    report.epochs, report.best_epoch = epoch, stopper.best_epoch
    report.train_seconds = time.perf_counter() - started
    if checkpoint is not None and first:
        checkpoint.remove()
    return report

"""The one training loop for PyTorch models, and the base class they extend.

A neural model supplies four things (its module, its batches, its loss, its scoring);
the loop supplies the rest: seeding, device placement, optimiser, per-epoch progress
lines (loss, validation metric, time, ETA), early stopping on the validation metric and
restoring the best epoch's weights. Checkpoints are chosen on validation, never on test.
"""

from __future__ import annotations

import logging
import math
import time
from abc import abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from neurec.errors import ConfigError
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
class TorchConfig:
    """Training knobs shared by every neural model (each model's config extends it)."""

    epochs: int = 20
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    patience: int = 3  # epochs without a better validation NDCG@10 before stopping
    seed: int = 42
    device: str = "auto"

    def __post_init__(self) -> None:
        check_positive("epochs", self.epochs)
        check_positive("batch_size", self.batch_size)
        check_positive("learning_rate", self.learning_rate)
        check_positive("weight_decay", self.weight_decay, allow_zero=True)
        check_positive("patience", self.patience)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("device", self.device, DEVICES)


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

    def initialise_from(self, pretrained: Mapping[str, Recommender]) -> None:
        """Copy weights from trained models named in ``pretrained_from`` (NeuMF)."""
        raise NotImplementedError(f"model '{self.name}' takes no pre-trained models")

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
        pretrained: Mapping[str, Recommender] | None = None,
    ) -> FitReport:
        if pretrained:
            self.initialise_from(pretrained)
        return train_loop(self, train, validator)

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


def train_loop(model: TorchRecommender, train: Interactions, validator: Validator | None):
    """Epochs with progress lines, early stopping on validation NDCG@10, best weights kept."""
    cfg = model.config
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model.module.to(device)
    optimizer = model.make_optimizer()
    report = FitReport()
    best_value, best_state, epochs_since_best = -math.inf, None, 0
    started = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        epoch_start = time.perf_counter()
        model.module.train()
        loss_sum, n_batches = torch.zeros((), device=device), 0
        for batch in model.training_batches(train, rng):
            batch = tuple(t.to(device, non_blocking=True) for t in batch)
            loss = model.batch_loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
            n_batches += 1
        mean_loss = float(loss_sum) / max(1, n_batches)
        if not math.isfinite(mean_loss):
            raise FloatingPointError(
                f"{model.name}: training loss became {mean_loss} at epoch {epoch}; "
                "lower learning_rate or check the data"
            )
        train_seconds = time.perf_counter() - epoch_start
        metrics = validator(model) if validator is not None else {}
        entry = {"epoch": epoch, "loss": mean_loss, "seconds": train_seconds}
        entry.update({f"val_{k}": float(v) for k, v in metrics.items()})
        report.history.append(entry)
        value = metrics.get(SELECTION_METRIC, -math.inf)
        improved = validator is None or value > best_value  # no validator: keep the last
        if improved:
            best_value, epochs_since_best, report.best_epoch = value, 0, epoch
            best_state = model.state()
        else:
            epochs_since_best += 1
        elapsed = time.perf_counter() - started
        eta = elapsed / epoch * (cfg.epochs - epoch)
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
        if validator is not None and epochs_since_best >= cfg.patience:
            logger.info(
                "%s: no validation gain for %d epochs; stopping, best epoch %d (%s %.4f)",
                model.name,
                cfg.patience,
                report.best_epoch,
                SELECTION_METRIC,
                best_value,
            )
            break
    model.load_state(best_state)
    report.epochs = epoch
    report.train_seconds = time.perf_counter() - started
    return report

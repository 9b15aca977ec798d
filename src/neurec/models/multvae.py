"""Mult-VAE (Liang et al., "Variational Autoencoders for Collaborative Filtering", WWW 2018).

A variational autoencoder over a user's whole item vector: the encoder q(z|x)
[n_items -> 600 -> 2 x 200] gives the mean and log-variance of a Gaussian latent, the
decoder [200 -> 600 -> n_items] maps a sample to logits, and training minimises the
multinomial negative log-likelihood plus beta * KL(q(z|x) || N(0, I)) (the paper's
"partially regularised" ELBO). Input, MLP, batching, loss and scoring are shared with
Mult-DAE in ``autoencoder.py``.

KL annealing. The paper raises beta linearly from 0 by 1 / total_anneal_steps per update
and caps it at anneal_cap = 0.2 (total_anneal_steps = 200000: the cap arrives after 40000
updates, about 170 epochs of ML-20M in batches of 500). Counted in updates, the same
schedule never reaches the cap on small data (ML-100K has 2 batches an epoch), so here
it is paced in epochs: beta grows linearly per update and reaches ``beta`` after
``anneal_epochs`` epochs, whatever the number of batches per epoch, then stays there.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from neurec.interactions import Interactions
from neurec.models.autoencoder import (
    AutoencoderConfig,
    AutoencoderRecommender,
    NormaliseAndDrop,
    mlp,
    multinomial_nll,
    training_users,
)
from neurec.models.base import check_positive, register


@dataclass
class MultVAEConfig(AutoencoderConfig):
    # weight_decay stays 0 (TorchConfig): the paper regularises the VAE by its KL term alone
    beta: float = 0.2  # the paper's anneal_cap: where the annealed KL weight stops
    anneal_epochs: int = 100  # epochs until the KL weight rises linearly (per update) to beta

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("beta", self.beta, allow_zero=True)
        check_positive("anneal_epochs", self.anneal_epochs)


def kl_weight(beta: float, anneal_epochs: int, epochs_done: float) -> float:
    """The annealed KL weight after ``epochs_done`` (fractional) epochs of updates."""
    return beta * min(1.0, epochs_done / anneal_epochs)


class VariationalAutoencoder(nn.Module):
    def __init__(self, n_items: int, hidden_dims: tuple[int, ...], latent_dim: int, dropout: float):
        super().__init__()
        self.corrupt = NormaliseAndDrop(dropout)
        self.encoder = mlp([n_items, *hidden_dims, 2 * latent_dim])  # mean and log-variance
        self.decoder = mlp([latent_dim, *reversed(hidden_dims), n_items])

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = self.encoder(self.corrupt(x)).chunk(2, dim=1)
        return mean, log_var

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # prediction decodes the posterior mean, no sampling (as the paper does)
        return self.decoder(self.encode(x)[0])


@register
class MultVAE(AutoencoderRecommender):
    name = "multvae"
    family = "autoencoders"
    config_class = MultVAEConfig

    def __init__(self, config: MultVAEConfig, n_users: int, n_items: int) -> None:
        super().__init__(config, n_users, n_items)
        # updates so far: the annealing clock. Like the weights, it carries on if fit() is
        # called again on a trained model; a new model anneals from beta = 0.
        self.updates = 0

    def build_module(self) -> nn.Module:
        cfg = self.config
        return VariationalAutoencoder(self.n_items, cfg.hidden_dims, cfg.latent_dim, cfg.dropout)

    def training_batches(
        self, train: Interactions, rng: np.random.Generator
    ) -> Iterator[tuple[torch.Tensor, ...]]:
        per_epoch = math.ceil(len(training_users(train)) / self.config.batch_size)
        for (x,) in super().training_batches(train, rng):
            beta = kl_weight(self.config.beta, self.config.anneal_epochs, self.updates / per_epoch)
            yield x, torch.tensor(beta)
            self.updates += 1  # the loop asks for the next batch after its update

    def training_state(self) -> dict[str, int]:
        return {"updates": self.updates}

    def load_training_state(self, state: Mapping[str, int]) -> None:
        self.updates = state["updates"]

    def batch_loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, beta = batch
        mean, log_var = self.module.encode(x)
        # reparameterisation: z = mean + sigma * eps keeps the sample differentiable
        z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
        kl = 0.5 * (log_var.exp() + mean.pow(2) - 1 - log_var).sum(dim=1).mean()
        return multinomial_nll(self.module.decoder(z), x) + beta * kl

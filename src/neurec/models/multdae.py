"""Mult-DAE (Liang et al., "Variational Autoencoders for Collaborative Filtering", WWW 2018).

A denoising autoencoder over a user's whole item vector: drop half of the (L2-normalised)
input, encode [n_items -> 600 -> 200] and decode [200 -> 600 -> n_items] with tanh
between layers, and train with the multinomial log-likelihood. No latent distribution,
so no KL term: regularisation is the input dropout plus L2 weight decay. Input, MLP,
batching, loss and scoring are shared with Mult-VAE in ``autoencoder.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from neurec.models.autoencoder import (
    AutoencoderConfig,
    AutoencoderRecommender,
    NormaliseAndDrop,
    mlp,
    multinomial_nll,
)
from neurec.models.base import register


@dataclass
class MultDAEConfig(AutoencoderConfig):
    # The authors' notebook adds lam * sum ||W||^2 to the batch-mean loss, lam = 0.01 / 500;
    # Adam's (coupled) weight decay wd adds wd * W to the gradient, i.e. wd = 2 * lam.
    # (It also decays the biases, which the authors' regulariser left alone.)
    weight_decay: float = 4e-5


class DenoisingAutoencoder(nn.Module):
    def __init__(self, n_items: int, hidden_dims: tuple[int, ...], latent_dim: int, dropout: float):
        super().__init__()
        self.corrupt = NormaliseAndDrop(dropout)
        self.encoder = mlp([n_items, *hidden_dims, latent_dim])
        self.decoder = mlp([latent_dim, *reversed(hidden_dims), n_items])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the code layer is an ordinary hidden layer here, so it gets the tanh too
        return self.decoder(torch.tanh(self.encoder(self.corrupt(x))))


@register
class MultDAE(AutoencoderRecommender):
    name = "multdae"
    family = "autoencoders"
    config_class = MultDAEConfig

    def build_module(self) -> nn.Module:
        cfg = self.config
        return DenoisingAutoencoder(self.n_items, cfg.hidden_dims, cfg.latent_dim, cfg.dropout)

    def batch_loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        (x,) = batch
        return multinomial_nll(self.module(x), x)

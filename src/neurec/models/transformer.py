"""What the sequential models share: sequence batches, scoring, and one Transformer block.

Not a model (nothing here is registered). Conventions, common to ``rnn``, ``sasrec`` and
``bert4rec``:

* a sequence is a row of ``Histories.padded``: the most recent items, left-padded, ids
  shifted by +1 so that 0 is padding (``nn.Embedding(padding_idx=0)``);
* a sequence module maps ``[B, L]`` ids to hidden states ``[B, L, d]`` aligned with its
  input columns, and ``item_scores`` maps hidden states to scores over the ``n_items``
  real items (column ``i`` is item index ``i``, i.e. embedding row ``i + 1``);
* at scoring time the input is the history the evaluator passes (train at validation,
  train + validation at test), and the score of the next item is read at the last column.

The Transformer block is used causally by SASRec and bidirectionally by BERT4Rec.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neurec.interactions import Histories, Interactions
from neurec.models.base import check_positive
from neurec.models.losses import FullSoftmax, SequenceLoss
from neurec.training import TorchConfig, TorchRecommender

# --- configs -----------------------------------------------------------------------------


@dataclass
class SequenceConfig(TorchConfig):
    max_len: int = 200  # most recent items a model reads; older ones are dropped
    # an upper bound: early stopping on validation NDCG@10 ends training
    epochs: int = 100
    batch_size: int = 128
    # SASRec on the ML-1M half: at 1e-3 validation NDCG@10 was still at popularity level
    # (0.022) after 8 epochs; at 3e-3 it left that plateau at epoch 5 and passed 0.11 at
    # epoch 12 (Pre-LN blocks train stably at this rate without warm-up)
    learning_rate: float = 3e-3
    patience: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("max_len", self.max_len)


@dataclass
class TransformerConfig(SequenceConfig):
    # SASRec's ML-1M architecture (2 blocks, 1 head, dropout 0.2) at the width 64 of
    # Klenitskiy & Vasilev 2023 (the paper: 50); BERT4Rec overrides heads and dropout
    hidden_size: int = 64
    n_layers: int = 2
    n_heads: int = 1
    dropout: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("hidden_size", self.hidden_size)
        check_positive("n_layers", self.n_layers)
        check_positive("n_heads", self.n_heads)
        check_dropout("dropout", self.dropout)
        if self.hidden_size % self.n_heads:
            raise ValueError(
                f"n_heads: must divide hidden_size ({self.hidden_size}), got {self.n_heads}"
            )


def check_dropout(field_name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{field_name}: expected a probability in [0, 1), got {value!r}")


# --- batches and scoring -----------------------------------------------------------------


class SequenceRecommender(TorchRecommender):
    """Base of the sequential models: user batches of padded sequences, a loss object
    (:mod:`neurec.models.losses`) and last-column scoring.

    ``self.module(seqs) -> [B, L, d]``, ``self.module.item_scores(hidden) -> [.., n_items]``
    and ``self.module.candidate_scores(hidden, items)``. By default a model learns to
    predict the next item at every position; BERT4Rec overrides the batches (cloze).
    """

    config: SequenceConfig
    uses_history = True  # no user vector: scores read only the items of the history

    def __init__(self, config: SequenceConfig, n_users: int, n_items: int) -> None:
        super().__init__(config, n_users, n_items)
        self.loss = self.build_loss()

    def build_loss(self) -> SequenceLoss:
        """The training objective the config chooses (default: full softmax)."""
        return FullSoftmax()

    def training_batches(
        self, train: Interactions, rng: np.random.Generator
    ) -> Iterator[tuple[torch.Tensor, ...]]:
        sample = self.loss.sampler(train)
        width = self.config.max_len + 1  # max_len inputs, each with its next item
        for users, seqs in self.sequence_batches(train, rng, width, min_length=2):
            # one target per input column; a batch of short histories is narrower than max_len
            yield (torch.as_tensor(seqs), *sample(users, seqs.shape[1] - 1, rng))

    def batch_loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        inputs, targets, valid = next_item_targets(batch[0])
        return self.loss(self.module, self.module(inputs), targets, valid, *batch[1:])

    def sequence_batches(
        self, train: Interactions, rng: np.random.Generator, width: int, min_length: int
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """One epoch of ``(users, padded [B, <= width])``, users with >= min_length items.

        Users of similar history length share a batch (sorted by length jittered by
        +-25%, so batches differ between epochs), batches come in random order: a batch
        is only as wide as its longest history, which halves the padding computed on
        MovieLens-like length distributions.
        """
        histories = train.histories
        users = np.flatnonzero(histories.lengths() >= min_length)
        lengths = np.minimum(histories.lengths(users), width)
        users = users[np.argsort(lengths * rng.uniform(0.75, 1.25, len(users)), kind="stable")]
        starts = np.arange(0, len(users), self.config.batch_size)
        for start in starts[rng.permutation(len(starts))]:
            batch = users[start : start + self.config.batch_size]
            yield batch, recent_items(histories, batch, width)

    def inference_sequences(self, histories: Histories, users: np.ndarray) -> np.ndarray:
        """The model's input at scoring time: the user's most recent ``max_len`` items."""
        return recent_items(histories, users, self.config.max_len)

    def score_batch(
        self, users: torch.Tensor, histories: Histories, items: torch.Tensor | None
    ) -> torch.Tensor:
        seqs = self.inference_sequences(histories, users.cpu().numpy())
        hidden = self.module(torch.as_tensor(seqs, device=users.device))
        scores = self.module.item_scores(hidden[:, -1])
        return scores if items is None else scores.gather(1, items)


def recent_items(histories: Histories, users: np.ndarray, max_len: int) -> np.ndarray:
    """``Histories.padded`` no wider than the batch's longest history (at least 1 column).

    Positions are anchored at the right end, so trimming all-padding columns changes no
    output; it only saves computation on batches of short histories.
    """
    longest = int(histories.lengths(users).max(initial=0))
    return histories.padded(users, max(1, min(max_len, longest)))


def next_item_targets(seqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Shift ``[B, L + 1]`` sequences into inputs and next-item targets ``[B, L]``.

    Returns ``(inputs, targets, valid)``; ``valid`` marks columns whose input is an item
    (the target is then an item too), the positions that carry a loss.
    """
    inputs, targets = seqs[:, :-1], seqs[:, 1:]
    return inputs, targets, inputs > 0


# --- the Transformer ---------------------------------------------------------------------


def attention_mask(seqs: torch.Tensor, causal: bool) -> torch.Tensor:
    """Boolean ``[B, 1, L, L]`` mask, True where query row may attend to key column.

    Padding keys are never attended to. Every query also attends to itself, so a padding
    query (left padding under a causal mask sees only padding) has one allowed key instead
    of none: no all-masked softmax row, no NaN. Such rows' outputs are never read.
    """
    length = seqs.shape[1]
    allowed = (seqs > 0)[:, None, None, :]
    if causal:
        allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=seqs.device).tril()
    return allowed | torch.eye(length, dtype=torch.bool, device=seqs.device)


class TransformerBlock(nn.Module):
    """Pre-LayerNorm block: x + Attention(LN(x)), then x + FFN(LN(x)).

    Pre-LN (as in SASRec's reference code) trains stably at lr 1e-3 without a warm-up.
    Attention is ``F.scaled_dot_product_attention``; the mask decides causal or not.
    """

    def __init__(self, hidden_size: int, n_heads: int, dropout: float, ffn_size: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.dropout = dropout
        self.attention_norm = nn.LayerNorm(hidden_size)
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.attention_out = nn.Linear(hidden_size, hidden_size)
        self.ffn_norm = nn.LayerNorm(hidden_size)
        self.ffn = nn.Sequential(
            nn.Linear(hidden_size, ffn_size),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(ffn_size, hidden_size),
        )
        self.residual_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = x.shape
        q, k, v = (
            self.qkv(self.attention_norm(x))
            .view(batch, length, 3, self.n_heads, hidden // self.n_heads)
            .permute(2, 0, 3, 1, 4)
        )
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        attended = attended.transpose(1, 2).reshape(batch, length, hidden)
        x = x + self.residual_dropout(self.attention_out(attended))
        return x + self.residual_dropout(self.ffn(self.ffn_norm(x)))


class TransformerEncoder(nn.Module):
    """Item + learned position embeddings, ``n_layers`` blocks, a final LayerNorm.

    ``vocab`` counts the embedding rows (padding, items, and BERT4Rec's [MASK]). Positions
    are anchored at the right end: the last column always gets the last position vector,
    as with SASRec/BERT4Rec's left padding to ``max_len``, and a shorter input (or more
    left padding) leaves the items' positions unchanged.
    """

    def __init__(self, vocab: int, config: TransformerConfig, causal: bool, ffn_size: int) -> None:
        super().__init__()
        self.causal = causal
        self.item_embedding = nn.Embedding(vocab, config.hidden_size, padding_idx=0)
        self.position_embedding = nn.Embedding(config.max_len, config.hidden_size)
        self.embedding_dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(config.hidden_size, config.n_heads, config.dropout, ffn_size)
            for _ in range(config.n_layers)
        )
        self.final_norm = nn.LayerNorm(config.hidden_size)
        # std 1/sqrt(hidden_size) (0.125 at 64): item vectors of norm ~1, so tied output
        # logits against the final LayerNorm's unit-variance states start with std ~1
        for embedding in (self.item_embedding, self.position_embedding):
            nn.init.normal_(embedding.weight, std=config.hidden_size**-0.5)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        positions = self.position_embedding.weight[-seqs.shape[1] :]
        x = self.embedding_dropout(self.item_embedding(seqs) + positions)
        mask = attention_mask(seqs, self.causal)
        for block in self.blocks:
            x = block(x, mask)
        return self.final_norm(x)

    def item_vectors(self, n_items: int) -> torch.Tensor:
        """Embeddings of the real items (rows 1..n_items), for tied output scores."""
        return self.item_embedding.weight[1 : n_items + 1]

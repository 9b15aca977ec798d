"""The Transformer encoder of SASRec (causal) and BERT4Rec (bidirectional).

Not a model (nothing here is registered): its config, attention mask, block and encoder.
Sequences follow the conventions of :mod:`neurec.models.sequence`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from neurec.models.base import check_choice, check_dropout, check_positive
from neurec.models.sequence import SequenceConfig

NORM_PLACEMENTS = ("pre", "sasrec", "post")
INITIALISATIONS = ("unit_logits", "sasrec", "bert")
POSITIONS = ("from_end", "from_first")


@dataclass
class TransformerConfig(SequenceConfig):
    # SASRec's ML-1M architecture (2 blocks, 1 head, dropout 0.2) at the width 64 of
    # Klenitskiy & Vasilev 2023 (the paper: 50); SASRec (SASRec+'s recipe) and BERT4Rec
    # set their own dropout, BERT4Rec its heads
    hidden_size: int = 64
    n_layers: int = 2
    n_heads: int = 1
    dropout: float = 0.2
    # where each sub-layer's residual starts. pre: x + f(LN(x)), the Pre-LN Transformer;
    # sasrec: LN(x) + f(LN(x)) with attention's keys and values read from x itself, as in
    # SASRec's reference code (Kang & McAuley's TensorFlow, its PyTorch ports and the
    # SASRec+ of Klenitskiy & Vasilev built on them); post: LN(x + f(x)), BERT's Post-LN
    # block, whose embeddings are LayerNorm-ed too and which needs no final LayerNorm (the
    # BERT4Rec of Klenitskiy & Vasilev's code is Hugging Face's BertModel)
    norm_placement: str = "pre"
    # unit_logits: embeddings of std 1/sqrt(hidden_size), so tied output logits start with
    # std ~1, PyTorch's default for the linear layers; sasrec: SASRec+'s (every weight
    # normal with std 0.02, zero biases, item vectors x sqrt(hidden_size) at the input), so
    # the logits start near zero. SASRec on the ML-1M half at lr 1e-3: validation NDCG@10
    # 0.080 at epoch 5 with sasrec, 0.023 with unit_logits (at popularity level until
    # epoch 11). BERT4Rec keeps unit_logits: on the synthetic data, with sasrec it left
    # popularity level far later. bert: BERT's, std 0.02 as sasrec but no input scaling
    # (the Post-LN block's embedding LayerNorm sets the input's scale)
    initialisation: str = "unit_logits"
    # which position vector each item gets. from_end: counted back from the row's last
    # column (the last item always gets the last one); from_first: counted from the row's
    # first item, as SASRec+'s right-padded batches do, so a model's state at an item is
    # the state the history up to it gets alone, and a short history tells how far into
    # it each item lies. SASRec on the ML-1M half, validation NDCG@10 at epoch 30 (with
    # sasrec initialisation and uniform batches): from_first 0.1727, from_end 0.1635
    positions: str = "from_end"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("norm_placement", self.norm_placement, NORM_PLACEMENTS)
        check_choice("initialisation", self.initialisation, INITIALISATIONS)
        check_choice("positions", self.positions, POSITIONS)
        check_positive("hidden_size", self.hidden_size)
        check_positive("n_layers", self.n_layers)
        check_positive("n_heads", self.n_heads)
        check_dropout("dropout", self.dropout)
        if self.hidden_size % self.n_heads:
            raise ValueError(
                f"n_heads: must divide hidden_size ({self.hidden_size}), got {self.n_heads}"
            )


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
    """Pre-LayerNorm block: x + Attention(LN(x)), then x + FFN(LN(x)); with
    ``norm_placement="sasrec"``, SASRec's reference block: h + Attention(q=h, kv=x) with
    h = LN(x), then h + FFN(h) with h = LN(x); with ``"post"``, BERT's: y = LN(x +
    Attention(x)), then LN(y + FFN(y)).

    All three train stably at lr 1e-3 without a warm-up (at these sizes).
    Attention is ``F.scaled_dot_product_attention``; the mask decides causal or not.
    With ``last_only`` the block returns the last column alone, ``[B, 1, d]``: its keys
    and values still come from every column, so that column's output is the one of the
    whole ``[B, L, d]``.
    """

    def __init__(
        self,
        hidden_size: int,
        n_heads: int,
        dropout: float,
        ffn_size: int,
        norm_placement: str = "pre",
    ) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.dropout = dropout
        self.norm_placement = norm_placement
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

    def forward(self, x: torch.Tensor, mask: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        batch, length, hidden = x.shape
        post = self.norm_placement == "post"
        normed = x if post else self.attention_norm(x)
        if self.norm_placement != "sasrec":
            qkv = self.qkv(normed)
        else:  # the query reads LN(x), keys and values x; the residual starts at LN(x)
            weight, bias = self.qkv.weight, self.qkv.bias
            qkv = torch.cat(
                [
                    F.linear(normed, weight[:hidden], bias[:hidden]),
                    F.linear(x, weight[hidden:], bias[hidden:]),
                ],
                dim=-1,
            )
            x = normed
        q, k, v = qkv.view(batch, length, 3, self.n_heads, hidden // self.n_heads).permute(
            2, 0, 3, 1, 4
        )
        if last_only:  # one query per row: the other columns' outputs are never read
            q, mask, x = q[:, :, -1:], mask[..., -1:, :], x[:, -1:]
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        attended = attended.transpose(1, 2).reshape(batch, x.shape[1], hidden)
        x = x + self.residual_dropout(self.attention_out(attended))
        if post:
            x = self.attention_norm(x)
            return self.ffn_norm(x + self.residual_dropout(self.ffn(x)))
        normed = self.ffn_norm(x)
        residual = x if self.norm_placement == "pre" else normed
        return residual + self.residual_dropout(self.ffn(normed))


class TransformerEncoder(nn.Module):
    """Item + learned position embeddings, ``n_layers`` blocks, a final LayerNorm (Post-LN:
    a LayerNorm of the embeddings instead, as BERT's).

    ``vocab`` counts the embedding rows (padding, items, and BERT4Rec's [MASK]). Positions
    follow ``config.positions``; either way, more or less left padding leaves every item's
    position unchanged.
    """

    def __init__(self, vocab: int, config: TransformerConfig, causal: bool, ffn_size: int) -> None:
        super().__init__()
        self.causal = causal
        self.item_embedding = nn.Embedding(vocab, config.hidden_size, padding_idx=0)
        self.position_embedding = nn.Embedding(config.max_len, config.hidden_size)
        self.embedding_dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                config.hidden_size, config.n_heads, config.dropout, ffn_size, config.norm_placement
            )
            for _ in range(config.n_layers)
        )
        post = config.norm_placement == "post"
        self.embedding_norm = nn.LayerNorm(config.hidden_size) if post else nn.Identity()
        self.final_norm = nn.Identity() if post else nn.LayerNorm(config.hidden_size)
        self.positions_from_first = config.positions == "from_first"
        self.input_scale = config.hidden_size**0.5 if config.initialisation == "sasrec" else 1.0
        if config.initialisation == "unit_logits":
            for embedding in (self.item_embedding, self.position_embedding):
                nn.init.normal_(embedding.weight, std=config.hidden_size**-0.5)
        else:  # sasrec, bert
            for module in self.modules():
                if isinstance(module, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(module.weight, std=0.02)
                if isinstance(module, nn.Linear) and module.bias is not None:
                    nn.init.zeros_(module.bias)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        """Hidden states ``[B, L, d]`` of ``seqs [B, L]``."""
        return self.final_norm(self.states(seqs, last_only=False))

    def last_states(self, seqs: torch.Tensor) -> torch.Tensor:
        """The hidden state ``[B, d]`` at the last column, all that scoring reads: the
        last block computes only that column (SASRec on the ML-1M half: evaluation 30%
        faster)."""
        return self.final_norm(self.states(seqs, last_only=True)[:, -1])

    def states(self, seqs: torch.Tensor, last_only: bool) -> torch.Tensor:
        """The last block's output, before the final LayerNorm."""
        if self.positions_from_first:
            first_item = (seqs == 0).sum(1, keepdim=True)  # left padding: the items come last
            columns = torch.arange(seqs.shape[1], device=seqs.device)
            positions = self.position_embedding((columns - first_item).clamp(min=0))
        else:
            positions = self.position_embedding.weight[-seqs.shape[1] :]
        x = self.item_embedding(seqs) * self.input_scale + positions
        x = self.embedding_dropout(self.embedding_norm(x))
        mask = attention_mask(seqs, self.causal)
        for i, block in enumerate(self.blocks):
            x = block(x, mask, last_only=last_only and i == len(self.blocks) - 1)
        return x

    def item_vectors(self, n_items: int) -> torch.Tensor:
        """Embeddings of the real items (rows 1..n_items), for tied output scores."""
        return self.item_embedding.weight[1 : n_items + 1]

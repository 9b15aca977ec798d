"""Memory limits of dense structures that grow with the catalogue, checked before training.

A model whose dense per-batch or per-catalogue structure would not fit stops when it is
built, with one message naming the size, the limit and the setting that lowers it, rather
than after ingest and split with an out-of-memory kill. EASE's item x item matrix has its
own settings (``ease.max_items``, ``ease.max_memory_gb``, in ``models/ease.py``).
"""

from __future__ import annotations

from neurec.errors import ConfigError

# gSASRec's scores of every item at every position ([positions, n_items] float32), their
# log-sigmoid and gradient. The cross-entropy losses never hold that tensor: the full
# softmax runs a chunk of positions at a time (neurec.models.losses.chunked_cross_entropy)
ALL_ITEM_SCORES_BYTES = 3 * 4
# what one training batch's logits may take: leaves room for the data and evaluation on a
# 16-24 GB machine (SASRec, batch 128 x length 200, fits up to ~26k items)
ALL_ITEM_SCORES_LIMIT_GB = 8.0


def check_all_item_scores(
    model: str, batch_size: int, max_len: int, n_items: int, lift: str
) -> None:
    """Stop if scores of all ``n_items`` at every position of a batch exceed the limit.

    ``lift`` names the setting that avoids them (e.g. a sampled softmax).
    """
    gb = batch_size * max_len * n_items * ALL_ITEM_SCORES_BYTES / 1e9
    if gb > ALL_ITEM_SCORES_LIMIT_GB:
        raise ConfigError(
            f"parameter {model}.batch_size: scores of all {n_items} items at "
            f"{batch_size} x {max_len} positions per batch need {gb:.1f} GB, more than the "
            f"{ALL_ITEM_SCORES_LIMIT_GB:g} GB limit (neurec.limits); lower {model}.batch_size or "
            f"{model}.max_len, or set {lift}"
        )

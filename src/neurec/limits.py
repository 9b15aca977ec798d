"""Memory limits of dense structures that grow with the catalogue, checked before training.

A model whose dense per-batch or per-catalogue structure would not fit stops when it is
built, with one message naming the size, the limit and the setting that lowers it, rather
than after ingest and split with an out-of-memory kill. EASE's item x item matrix has its
own settings (``ease.max_items``, ``ease.max_memory_gb``, in ``models/ease.py``).
"""

from __future__ import annotations

from neurec.errors import ConfigError

# a full softmax's [positions, n_items] float32 logits, their log-softmax and gradient
FULL_SOFTMAX_BYTES = 3 * 4
# what one training batch's logits may take: leaves room for the data and evaluation on a
# 16-24 GB machine (SASRec, batch 128 x length 200, fits up to ~26k items)
FULL_SOFTMAX_LIMIT_GB = 8.0


def check_full_softmax(model: str, batch_size: int, max_len: int, n_items: int, lift: str) -> None:
    """Stop if a full softmax over ``n_items`` at every position of a batch exceeds the limit.

    ``lift`` names the setting that avoids the full softmax (e.g. sampled negatives).
    """
    gb = batch_size * max_len * n_items * FULL_SOFTMAX_BYTES / 1e9
    if gb > FULL_SOFTMAX_LIMIT_GB:
        raise ConfigError(
            f"parameter {model}.batch_size: a full softmax over {n_items} items at "
            f"{batch_size} x {max_len} positions per batch needs {gb:.1f} GB, more than the "
            f"{FULL_SOFTMAX_LIMIT_GB:g} GB limit (neurec.limits); lower {model}.batch_size or "
            f"{model}.max_len, or set {lift}"
        )

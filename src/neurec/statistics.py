"""How sure are the reported numbers? Bootstrap intervals and paired tests over users.

Every reported ranking metric is a mean over test users, so the user is the unit of
resampling: a confidence interval resamples users with replacement (percentile
bootstrap, Efron & Tibshirani 1993), and two models are compared on the same users with
a paired sign-flip permutation test of the mean difference (Fisher's randomisation
test; Smucker, Allan & Carterette, "A Comparison of Statistical Significance Tests for
Information Retrieval Evaluation", CIKM 2007, recommend it for IR metrics). Several
models compared with one baseline are several tests: Holm's step-down correction
(Holm 1979) keeps the chance of any false "significant" at alpha.

Plain numpy and pandas, seeded, vectorised over resamples (processed in chunks so that
memory stays bounded for large user counts); importable without Kedro.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

CHUNK_CELLS = 1 << 22  # resamples x users handled at once (~32 MB of float64)


def _chunks(n_resamples: int, n_users: int) -> Iterator[int]:
    """Sizes of the resample blocks, each at most CHUNK_CELLS cells."""
    size = max(1, CHUNK_CELLS // max(1, n_users))
    for start in range(0, n_resamples, size):
        yield min(size, n_resamples - start)


def bootstrap_ci(
    values: np.ndarray,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of the mean of each column of ``values`` [users, m].

    Users are resampled jointly across columns (one resample draws one set of users for
    every metric). NaN cells (a user without a value) are left out of that column's mean,
    as the reported means do. A 1-D input is treated as one column; the bounds come back
    with the shape of one row.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: expected a value in (0, 1), got {confidence!r}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples: expected > 0, got {n_resamples!r}")
    data = np.asarray(values, dtype=np.float64)
    column = data.ndim == 1
    data = data[:, None] if column else data
    n_users = data.shape[0]
    if n_users == 0:
        raise ValueError("bootstrap_ci: no users to resample")
    present = ~np.isnan(data)
    filled = np.where(present, data, 0.0)
    rng = np.random.default_rng(seed)
    means = []
    for size in _chunks(n_resamples, n_users):
        # how often each user is drawn in each resample: the mean is then a weighted sum
        draws = rng.integers(0, n_users, size=(size, n_users))
        offsets = np.arange(size)[:, None] * n_users
        counts = np.bincount((draws + offsets).ravel(), minlength=size * n_users)
        counts = counts.reshape(size, n_users).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            means.append((counts @ filled) / (counts @ present))
    tail = (1.0 - confidence) / 2.0
    low, high = np.nanquantile(np.concatenate(means), [tail, 1.0 - tail], axis=0)
    return (low[0], high[0]) if column else (low, high)


def paired_permutation_test(
    a: np.ndarray, b: np.ndarray, n_resamples: int = 10000, seed: int = 0
) -> float:
    """Two-sided p-value for "mean(a) = mean(b)" with a and b measured on the same users.

    Under the null hypothesis the two models are exchangeable for each user, so the sign
    of each per-user difference is a coin flip. The p-value counts the sign-flipped mean
    differences at least as far from zero as the observed one, with the observed
    assignment included ((hits + 1) / (resamples + 1)), so it is never 0 and the test
    keeps its level.
    """
    differences = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if differences.ndim != 1:
        raise ValueError("paired_permutation_test: expected two 1-D arrays of equal length")
    if np.isnan(differences).any():
        raise ValueError("paired_permutation_test: NaN values; pair only users with both values")
    if n_resamples < 1:
        raise ValueError(f"n_resamples: expected > 0, got {n_resamples!r}")
    n_users = len(differences)
    if n_users == 0:
        raise ValueError("paired_permutation_test: no paired users")
    observed = abs(differences.mean())
    # a tolerance, so that the observed assignment itself always counts despite rounding
    threshold = observed - 1e-12 * max(1.0, observed)
    rng = np.random.default_rng(seed)
    hits = 0
    for size in _chunks(n_resamples, n_users):
        signs = np.where(rng.random((size, n_users)) < 0.5, -1.0, 1.0)
        hits += int((np.abs(signs @ differences) / n_users >= threshold).sum())
    return (hits + 1) / (n_resamples + 1)


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values: compare each with alpha to control the family-wise error.

    Step-down: the i-th smallest p-value is multiplied by (m - i), running maxima keep
    the order, and nothing exceeds 1.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (len(p) - np.arange(len(p)))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted


def metric_intervals(
    user_metrics: pd.DataFrame,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, list[float]]]:
    """``{protocol: {metric: [low, high]}}`` from a per-user table (protocol, user, metrics)."""
    out = {}
    for protocol, part in user_metrics.groupby("protocol", sort=False):
        columns = [c for c in part.columns if c not in ("protocol", "user")]
        low, high = bootstrap_ci(part[columns].to_numpy(), n_resamples, confidence, seed)
        out[str(protocol)] = {
            c: [float(lo), float(hi)] for c, lo, hi in zip(columns, low, high, strict=True)
        }
    return out


def compare_with_baseline(
    user_metrics: dict[str, pd.DataFrame],
    baseline: str,
    protocol: str,
    metric: str = "NDCG@10",
    n_resamples: int = 10000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, dict[str, float | bool]]:
    """Each model against ``baseline`` on ``metric`` per user, Holm-corrected over models.

    Returns ``{model: {difference, p_value, p_holm, significant}}`` where difference is
    mean(model) - mean(baseline) over the users both were evaluated on.
    """

    def column(model: str) -> pd.Series:
        table = user_metrics[model]
        part = table[table["protocol"] == protocol]
        return part.set_index("user")[metric].dropna()

    reference = column(baseline)
    raw = {}
    for model in user_metrics:
        if model == baseline:
            continue
        paired = pd.concat([column(model), reference], axis=1, join="inner").to_numpy()
        p_value = paired_permutation_test(paired[:, 0], paired[:, 1], n_resamples, seed)
        raw[model] = (float(paired[:, 0].mean() - paired[:, 1].mean()), p_value)
    adjusted = holm(np.array([p for _, p in raw.values()]))
    return {
        model: {
            "difference": difference,
            "p_value": p_value,
            "p_holm": float(p_holm),
            "significant": bool(p_holm < alpha),
        }
        for (model, (difference, p_value)), p_holm in zip(raw.items(), adjusted, strict=True)
    }

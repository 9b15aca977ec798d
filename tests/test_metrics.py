import math

import numpy as np
import pytest
import torch

from neurec.metrics import ranking_metrics


def reference(scores, is_target, is_valid, k):
    """Brute force: sort each row (ties against targets), then read positions."""
    out = {"HR": [], "NDCG": [], "Recall": [], "MRR": []}
    for s, t, v in zip(scores, is_target, is_valid, strict=True):
        v = v | t
        idx = [i for i in range(len(s)) if v[i]]
        # non-targets before targets on ties; targets tie-broken by column
        idx.sort(key=lambda i: (-s[i], bool(t[i]), i))
        positions = [p + 1 for p, i in enumerate(idx) if t[i]]
        if not positions:
            for key in out:
                out[key].append(math.nan)
            continue
        hits = [p for p in positions if p <= k]
        ideal = sum(1 / math.log2(i + 2) for i in range(min(k, len(positions))))
        out["HR"].append(float(bool(hits)))
        out["Recall"].append(len(hits) / len(positions))
        out["NDCG"].append(sum(1 / math.log2(p + 1) for p in hits) / ideal)
        out["MRR"].append(1 / min(positions))
    return out


def test_single_target_by_hand():
    scores = torch.tensor([[0.9, 0.5, 0.7, 0.1]])
    is_target = torch.tensor([[False, True, False, False]])
    is_valid = torch.ones_like(is_target)
    m = ranking_metrics(scores, is_target, is_valid, ks=(1, 3))
    # target ranks third: 0.9, 0.7, 0.5
    assert m["HR@1"].item() == 0.0
    assert m["HR@3"].item() == 1.0
    assert m["NDCG@3"].item() == pytest.approx(1 / math.log2(4))
    assert m["MRR"].item() == pytest.approx(1 / 3)


def test_excluded_items_do_not_compete():
    scores = torch.tensor([[0.9, 0.5, 0.7, 0.1]])
    is_target = torch.tensor([[False, True, False, False]])
    is_valid = torch.tensor([[False, True, False, True]])  # history items 0 and 2
    m = ranking_metrics(scores, is_target, is_valid, ks=(1,))
    assert m["HR@1"].item() == 1.0
    assert m["MRR"].item() == 1.0


def test_ties_count_against_the_target():
    scores = torch.zeros(1, 5)
    is_target = torch.tensor([[False, False, True, False, False]])
    m = ranking_metrics(scores, is_target, torch.ones_like(is_target), ks=(1, 4, 5))
    assert m["HR@4"].item() == 0.0  # a constant scorer puts the target last
    assert m["HR@5"].item() == 1.0
    assert m["MRR"].item() == pytest.approx(1 / 5)


def test_rows_without_target_are_nan():
    scores = torch.rand(2, 4)
    is_target = torch.tensor([[True, False, False, False], [False] * 4])
    m = ranking_metrics(scores, is_target, torch.ones_like(is_target), ks=(2,))
    assert not math.isnan(m["NDCG@2"][0].item())
    assert math.isnan(m["NDCG@2"][1].item())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_with_several_targets_and_ties(seed):
    rng = np.random.default_rng(seed)
    n_users, n_items, k = 40, 30, 5
    scores = rng.integers(0, 8, size=(n_users, n_items)).astype(np.float32)  # many ties
    is_target = rng.random((n_users, n_items)) < 0.1
    is_valid = rng.random((n_users, n_items)) < 0.8
    got = ranking_metrics(
        torch.tensor(scores), torch.tensor(is_target), torch.tensor(is_valid), ks=(k,)
    )
    want = reference(scores, is_target, is_valid, k)
    for name in ("HR", "NDCG", "Recall"):
        np.testing.assert_allclose(got[f"{name}@{k}"].numpy(), want[name], rtol=1e-5)
    np.testing.assert_allclose(got["MRR"].numpy(), want["MRR"], rtol=1e-5)

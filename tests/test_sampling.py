import numpy as np
import scipy.sparse as sp

from neurec.evaluation import EvaluationConfig, build_candidates
from neurec.sampling import PairLookup, sample_candidate_sets, sample_training_negatives


def random_matrix(seed, n_users=50, n_items=80, density=0.2):
    return sp.random(n_users, n_items, density=density, format="csr", random_state=seed)


def test_candidate_sets_are_distinct_unseen_and_seeded():
    seen = random_matrix(0)
    users = np.arange(50)
    a = sample_candidate_sets(users, seen, 30, None, np.random.default_rng(1))
    b = sample_candidate_sets(users, seen, 30, None, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    dense = seen.toarray() > 0
    for user, row in zip(users, a, strict=True):
        assert len(set(row)) == 30
        assert not dense[user, row].any()


def test_popularity_sampling_prefers_popular_items():
    seen = sp.csr_matrix((200, 100))
    weights = np.ones(100)
    weights[:10] = 50.0
    draws = sample_candidate_sets(np.arange(200), seen, 5, weights, np.random.default_rng(0))
    share_popular = np.isin(draws, np.arange(10)).mean()
    assert share_popular > 0.5  # 10 items hold 500/590 of the weight


def test_training_negatives_are_never_positives():
    positives = random_matrix(3, density=0.5)
    lookup = PairLookup(positives)
    users = np.repeat(np.arange(50), 20)
    negatives = sample_training_negatives(users, 4, lookup, np.random.default_rng(0))
    dense = positives.toarray() > 0
    assert not dense[users[:, None], negatives].any()


def test_stored_candidates_cover_test_users_and_exclude_all_their_items(synthetic_split):
    data = synthetic_split.evaluation
    settings = EvaluationConfig(protocols=("full", "sampled_uniform_99"))
    candidates = build_candidates(data, settings)
    assert set(candidates["protocol"]) == {"sampled_uniform_99"}
    assert (candidates.groupby("user").size() == 99).all()
    everything = data.history.append(data.targets).matrix().toarray() > 0
    assert not everything[candidates["user"], candidates["item"]].any()

"""The report's statistics on simulated data, where the truth is known."""

import numpy as np
import pandas as pd
import pytest

from neurec.statistics import (
    bootstrap_ci,
    compare_with_baseline,
    holm,
    metric_intervals,
    paired_permutation_test,
)


@pytest.mark.parametrize("confidence", [0.95, 0.5])
def test_bootstrap_interval_covers_the_true_mean_at_about_the_nominal_rate(confidence):
    # 400 simulated evaluations (columns) of 200 users with hit probability 0.3: a
    # correct interval of the mean covers 0.3 in about `confidence` of them; an interval
    # of the values (not of the mean) or a wrong tail would miss this by far
    rng = np.random.default_rng(1)
    hits = (rng.random((200, 400)) < 0.3).astype(float)
    low, high = bootstrap_ci(hits, n_resamples=1000, confidence=confidence, seed=2)
    coverage = np.mean((low <= 0.3) & (high >= 0.3))
    assert abs(coverage - confidence) < 0.05


def test_bootstrap_interval_is_seeded_and_ignores_missing_values():
    rng = np.random.default_rng(0)
    values = rng.exponential(size=(300, 2))
    first = bootstrap_ci(values, seed=5)
    assert np.array_equal(first[0], bootstrap_ci(values, seed=5)[0])
    with_gaps = np.vstack([values, np.full((50, 2), np.nan)])
    assert np.allclose(bootstrap_ci(with_gaps, seed=5)[0], first[0], atol=0.05)
    low, high = bootstrap_ci(values[:, 0], seed=5)  # one column -> scalars
    assert low < values[:, 0].mean() < high


def test_permutation_test_detects_a_planted_difference_and_not_a_null_one():
    rng = np.random.default_rng(3)
    baseline = rng.random(300)
    better = baseline + 0.05 + rng.normal(0, 0.2, 300)
    assert paired_permutation_test(better, baseline, 2000, seed=1) < 0.01
    # under the null, p < 0.05 happens in about 5% of experiments
    null_p = [
        paired_permutation_test(rng.random(100), rng.random(100), 500, seed=i) for i in range(200)
    ]
    assert 0.01 <= np.mean(np.array(null_p) < 0.05) <= 0.10


def test_permutation_test_of_identical_models_gives_p_one():
    values = np.random.default_rng(0).random(50)
    assert paired_permutation_test(values, values.copy(), 100) == 1.0


def test_holm_matches_a_worked_example():
    # sorted p: 0.01*4, 0.02*3, 0.03*2, then 0.04*1 raised to the running maximum
    adjusted = holm(np.array([0.03, 0.01, 0.04, 0.02]))
    assert np.allclose(adjusted, [0.06, 0.04, 0.06, 0.06])
    assert np.allclose(holm(np.array([0.5, 0.9])), [1.0, 1.0])


def user_table(values_by_protocol):
    frames = [
        pd.DataFrame({"protocol": protocol, "user": np.arange(len(v)), "NDCG@10": v})
        for protocol, v in values_by_protocol.items()
    ]
    return pd.concat(frames, ignore_index=True)


def test_comparison_flags_only_the_model_with_a_real_difference():
    rng = np.random.default_rng(4)
    base = rng.random(400)
    tables = {
        "base": user_table({"full": base}),
        "same": user_table({"full": base + rng.normal(0, 0.05, 400)}),
        "better": user_table({"full": base + 0.08 + rng.normal(0, 0.05, 400)}),
    }
    result = compare_with_baseline(tables, "base", "full", n_resamples=2000)
    assert set(result) == {"same", "better"}
    assert result["better"]["significant"] and result["better"]["difference"] > 0.05
    assert not result["same"]["significant"]
    assert result["better"]["p_holm"] >= result["better"]["p_value"]


def test_metric_intervals_per_protocol_contain_the_means():
    rng = np.random.default_rng(5)
    table = user_table({"full": rng.random(200), "sampled_uniform_99": rng.random(200)})
    intervals = metric_intervals(table, n_resamples=500)
    for protocol, part in table.groupby("protocol"):
        low, high = intervals[protocol]["NDCG@10"]
        assert low < part["NDCG@10"].mean() < high

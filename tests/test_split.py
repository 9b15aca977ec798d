import numpy as np
import pandas as pd
import pytest

from neurec import workflow
from neurec.datasets import SplitDataset
from neurec.errors import ConfigError, DataError
from neurec.interactions import validate_interactions
from neurec.models.base import build_config
from neurec.sources import load_source
from neurec.split import SplitConfig, dataset_statistics, k_core, split_interactions
from tests.conftest import make_split


def split_table(interactions, params):
    """What the split node does: the parameters block through the config builder."""
    return split_interactions(interactions, build_config(SplitConfig, params, "split"))


def table(rows):
    return validate_interactions(
        pd.DataFrame(rows, columns=["user", "item", "timestamp", "rating"]), "test table"
    )


def test_leave_one_out_is_per_user_by_time_with_stable_ties():
    # user 10: items 1,2 share timestamp 5 -> source order decides: 2 is after 1
    rows = [
        (10, 3, 9, 5.0),
        (10, 1, 5, 4.0),
        (20, 7, 1, 3.0),
        (10, 2, 5, 3.0),
        (20, 8, 2, 1.0),
        (20, 9, 3, 2.0),
        (10, 4, 1, 5.0),
    ]
    split = split_table(table(rows), {"method": "leave_one_out"})
    source = split.item_index.set_index("item")["source_id"]
    user_of = split.user_index.set_index("user")["source_id"]

    def items(part, user):
        frame = part[part["user"].map(user_of) == user]
        return list(frame["item"].map(source))

    assert items(split.test, 10) == [3]
    assert items(split.validation, 10) == [2]
    assert items(split.train, 10) == [4, 1]
    assert items(split.test, 20) == [9]
    assert items(split.validation, 20) == [8]
    assert items(split.train, 20) == [7]


def test_ids_are_contiguous_indices():
    rows = [(u, i, t, 1.0) for u in (5, 9) for t, i in enumerate((100, 200, 300))]
    split = split_table(table(rows), {})
    assert set(split.train["user"]) <= {0, 1}
    assert sorted(split.item_index["source_id"]) == [100, 200, 300]
    assert split.n_items == 3


def test_too_few_interactions_for_leave_one_out_is_a_clear_error():
    rows = [(1, 1, 1, 1.0), (1, 2, 2, 1.0), (2, 1, 1, 1.0), (2, 2, 2, 1.0), (2, 3, 3, 1.0)]
    with pytest.raises(DataError, match=r"fewer than 3 interactions.*min_user_interactions"):
        split_table(table(rows), {"method": "leave_one_out"})
    # the filter drops that user instead
    split = split_table(table(rows), {"min_user_interactions": 3})
    assert split.n_users == 1


def test_k_core_is_iterative():
    rows = [(1, 1, 0, 1.0), (1, 2, 1, 1.0), (2, 1, 0, 1.0), (2, 2, 1, 1.0), (3, 3, 0, 1.0)]
    kept = k_core(table(rows), min_user=2, min_item=2)
    assert set(kept["user"]) == {1, 2}


def test_rating_threshold_keeps_high_ratings_only():
    rows = [(1, i, i, float(r)) for i, r in enumerate([5, 4, 1, 5, 2, 4])]
    split = split_table(table(rows), {"rating_threshold": 4})
    assert len(split.train) + len(split.validation) + len(split.test) == 4


def test_temporal_split_has_no_future_in_train():
    rng = np.random.default_rng(0)
    rows = [(u, i, int(rng.integers(0, 1000)), 1.0) for u in range(30) for i in range(20)]
    split = split_table(
        table(rows), {"method": "temporal", "test_fraction": 0.2, "validation_fraction": 0.1}
    )
    assert split.train["timestamp"].max() < split.validation["timestamp"].min()
    assert split.validation["timestamp"].max() < split.test["timestamp"].min()


def test_random_split_is_seeded():
    rows = [(u, i, i, 1.0) for u in range(20) for i in range(20)]
    a = split_table(table(rows), {"method": "random", "seed": 3})
    b = split_table(table(rows), {"method": "random", "seed": 3})
    pd.testing.assert_frame_equal(a.test, b.test)
    assert 0.1 < len(a.test) / len(rows) < 0.3


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"method": "shuffle"}, "split.method"),
        ({"method": "random", "test_fraction": 1.5}, "split.test_fraction"),
        ({"rating_threshold": 4}, "no 'rating' column"),
    ],
)
def test_invalid_split_parameters(params, message):
    rows = pd.DataFrame({"user": [1, 1, 1], "item": [1, 2, 3], "timestamp": [1, 2, 3]})
    with pytest.raises(ConfigError, match=message):
        split_table(validate_interactions(rows, "t"), params)


def test_given_split_keeps_test_as_given():
    rows = pd.DataFrame(
        {
            "user": [0, 0, 0, 1, 1, 1],
            "item": [1, 2, 3, 1, 2, 4],
            "timestamp": [1, 2, 3, 1, 2, 3],
            "split": ["train", "train", "test", "train", "train", "test"],
        }
    )
    split = split_table(validate_interactions(rows, "t"), {"method": "given"})
    assert len(split.test) == 2 and len(split.validation) == 2 and len(split.train) == 2


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"user": [1], "item": [2]}), "missing column"),
        (pd.DataFrame({"user": [], "item": [], "timestamp": []}), "empty"),
        (pd.DataFrame({"user": ["a"], "item": [2], "timestamp": [3]}), "'user' must be numeric"),
        (pd.DataFrame({"user": [1], "item": [2], "timestamp": [None]}), "'timestamp' has missing"),
        (pd.DataFrame({"user": [1.5], "item": [2], "timestamp": [3]}), "'user' must hold integers"),
    ],
)
def test_canonical_table_validation(frame, message):
    with pytest.raises(DataError, match=message):
        validate_interactions(frame, "my.csv")


# --- repeated interactions ----------------------------------------------------------------


def pairs(part):
    return set(zip(part["user"], part["item"], strict=True))


@pytest.mark.parametrize("method", ["leave_one_out", "temporal", "random"])
def test_a_log_concatenated_with_itself_never_puts_a_test_item_in_train(method):
    rng = np.random.default_rng(1)
    rows = [(u, i, int(rng.integers(0, 1000)), 1.0) for u in range(40) for i in range(12)]
    doubled = table(rows + rows)
    split = split_table(doubled, {"method": method})
    assert split.duplicates_dropped == len(rows)
    train = pairs(split.train)
    assert not train & pairs(split.validation)
    assert not train & pairs(split.test)
    assert not pairs(split.validation) & pairs(split.test)
    once = split_table(table(rows), {"method": method})
    for name in ("train", "validation", "test"):
        pd.testing.assert_frame_equal(getattr(split, name), getattr(once, name))


def test_repeats_keep_each_users_first_interaction_with_an_item(caplog):
    # user 1 sees item 7 at time 2 and again at 9 (a re-watch): the first one is kept, so
    # item 7 is train, not test; the exact repeat of (1, 8, 5) counts once, in file order
    rows = [(1, 7, 9, 1.0), (1, 8, 5, 2.0), (1, 9, 6, 1.0), (1, 7, 2, 1.0), (1, 8, 5, 3.0)]
    rows += [(1, 10, 7, 1.0)]
    with caplog.at_level("INFO", logger="neurec.split"):
        split = split_table(table(rows), {"method": "leave_one_out"})
    source = split.item_index.set_index("item")["source_id"]
    assert list(split.train["item"].map(source)) == [7, 8]
    assert list(split.validation["item"].map(source)) == [9]
    assert list(split.test["item"].map(source)) == [10]
    assert split.duplicates_dropped == 2
    assert "dropped 2 repeated (user, item)" in caplog.text
    assert dataset_statistics(table(rows), split)["duplicates_dropped"] == 2


def test_repeats_are_dropped_before_the_k_core_filter():
    # 5 rows but only 3 distinct items: a 4-core on users must drop this user
    rows = [(1, 1, 1, 1.0), (1, 1, 2, 1.0), (1, 2, 3, 1.0), (1, 2, 4, 1.0), (1, 3, 5, 1.0)]
    rows += [(2, i, i, 1.0) for i in range(1, 5)]
    split = split_table(table(rows), {"min_user_interactions": 4})
    assert list(split.user_index["source_id"]) == [2]


@pytest.mark.slow
def test_ease_on_ml100k_concatenated_with_itself_scores_as_on_ml100k(shared_data, tmp_path):
    original = shared_data / "ml-100k" / "u.data"
    doubled = tmp_path / "u.data"
    doubled.write_bytes(original.read_bytes() * 2)
    hit_rates = []
    for path in (original, doubled):
        split = make_split({"source": "movielens", "path": str(path)})
        model, _ = workflow.train("ease", {"l2": 500.0}, split)
        hit_rates.append(workflow.evaluate(model, split, None).metrics["full"]["HR@10"])
    assert split.statistics["duplicates_dropped"] == 100_000
    assert hit_rates[1] == hit_rates[0]


def test_a_split_round_trips_through_its_folder_and_a_new_one_replaces_it_whole(
    tmp_path, synthetic_split
):
    dataset = SplitDataset(str(tmp_path / "split"))
    dataset.save(synthetic_split)
    loaded = dataset.load()
    for part in ("train", "validation", "test"):
        for column in ("user", "item"):
            np.testing.assert_array_equal(
                getattr(getattr(loaded, part), column),
                getattr(getattr(synthetic_split, part), column),
            )
    pd.testing.assert_frame_equal(loaded.user_index, synthetic_split.user_index)
    pd.testing.assert_frame_equal(loaded.item_index, synthetic_split.item_index)
    assert loaded.statistics == synthetic_split.statistics
    assert loaded.fingerprint == synthetic_split.fingerprint
    np.testing.assert_array_equal(loaded.evaluation.users, synthetic_split.evaluation.users)

    table = load_source({"source": "synthetic"}).interactions
    other = workflow.split(table, {"min_user_interactions": 30})
    dataset.save(other)
    assert dataset.load().fingerprint == other.fingerprint != synthetic_split.fingerprint
    assert [p.name for p in tmp_path.iterdir()] == ["split"]  # no temporary or old folder

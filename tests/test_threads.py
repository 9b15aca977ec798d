"""The `threads` block: torch's thread count chosen from the free cores, applied per run."""

from __future__ import annotations

import pytest
import torch

from neurec.errors import ConfigError
from neurec.models import registry
from neurec.models.base import build_config
from neurec.run_guard import LOCK_FILE
from neurec.threads import ThreadsConfig, free_cores, resolve_threads, set_threads, share
from tests.test_distributed import tiny_train
from tests.test_pipeline import SMALL_DATA, kedro_run


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    set_threads(before)


@pytest.mark.parametrize(
    ("cores", "load", "free"),
    [(2, 0.1, 2), (2, 0.6, 1), (2, 6.1, 1), (8, 3.4, 5), (8, 0.0, 8), (1, 0.0, 1)],
)
def test_free_cores_are_the_usable_ones_minus_the_load(cores, load, free):
    assert free_cores(cores, load) == free


def test_auto_takes_the_free_cores_up_to_torchs_default(monkeypatch):
    monkeypatch.setattr("neurec.threads.usable_cores", lambda: 64)
    monkeypatch.setattr("neurec.threads._torch_default", 16)  # physical cores, or OMP_NUM_THREADS
    monkeypatch.setattr("neurec.threads.os.getloadavg", lambda: (60.2, 0.0, 0.0))
    assert resolve_threads(ThreadsConfig()) == 4
    monkeypatch.setattr("neurec.threads.os.getloadavg", lambda: (0.0, 0.0, 0.0))
    assert resolve_threads(ThreadsConfig()) == 16
    assert resolve_threads(ThreadsConfig(torch=3)) == 3


def test_workers_of_one_machine_share_the_count():
    assert [share(4, 2), share(3, 2), share(1, 2), share(2, 1)] == [2, 1, 1, 2]


@pytest.mark.parametrize("value", [0, -1, "two", True, 1.5])
def test_a_bad_count_names_the_parameter(value):
    with pytest.raises(ConfigError, match=r"parameter threads\.torch: .*auto.*positive integer"):
        build_config(ThreadsConfig, {"torch": value}, "threads")


def trained_states(name: str, train, threads: int) -> dict[str, torch.Tensor]:
    set_threads(threads)
    params = {} if name == "ease" else {"epochs": 1, "device": "cpu", "seed": 1}
    if name == "sasrec":
        params |= {"max_len": 20, "hidden_size": 16}
    model = registry()[name].from_params(params, train.n_users, train.n_items)
    model.fit(train)
    return model.state()


@pytest.mark.parametrize(
    ("name", "tolerance"), [("ease", 0.0), ("gmf", 0.0), ("multvae", 0.0), ("sasrec", 1e-3)]
)
def test_the_thread_count_moves_results_by_rounding_at_most(name, tolerance, restore_threads):
    """One epoch with 1 and 2 threads: the same weights, or (SASRec, whose backward pass
    splits reductions by thread) weights within float rounding of each other."""
    train = tiny_train(200, 300, 30)
    one, two = (trained_states(name, train, threads) for threads in (1, 2))
    for key, tensor in one.items():
        torch.testing.assert_close(two[key], tensor, atol=tolerance, rtol=0, msg=key)


def test_kedro_run_applies_the_setting(project_copy, restore_threads):
    set_threads(2)
    kedro_run(project_copy, "most_popular", {**SMALL_DATA, "threads": {"torch": 1}})
    assert torch.get_num_threads() == 1


def test_a_bad_setting_stops_the_run_before_anything_is_written(project_copy):
    with pytest.raises(ConfigError, match=r"parameter threads\.torch"):
        kedro_run(project_copy, "most_popular", {**SMALL_DATA, "threads": {"torch": 0}})
    assert not any(p.is_file() for p in (project_copy / "data").rglob("*"))
    assert not (project_copy / LOCK_FILE).exists()

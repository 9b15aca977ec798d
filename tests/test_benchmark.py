"""The benchmark command and its tables, on the built-in synthetic data (seconds)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import neurec
from neurec.benchmark import main as benchmark
from neurec.benchmark_tables import main as tables


@pytest.fixture(scope="module")
def result_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "synthetic.json"
    code = benchmark(
        [
            "--models", "most_popular", "ease:l2=100",
            "--protocols", "full", "sampled_uniform_99",
            "--threads", "1",
            "--env", "base",
            "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    return out


def test_benchmark_writes_cost_metrics_and_protocol(result_file):
    result = json.loads(result_file.read_text())
    assert result["torch_threads"] == 1
    assert result["candidate_seed"] == 2024
    assert set(result["protocols"]) == {"full", "sampled_uniform_99"}
    assert set(result["models"]) == {"most_popular", "ease:l2=100"}
    ease = result["models"]["ease:l2=100"]
    assert ease["overrides"] == {"l2": 100}
    assert set(ease["evaluation_seconds"]) == {"full", "sampled_uniform_99"}
    for protocol in ("full", "sampled_uniform_99"):
        assert ease["metrics"][protocol]["NDCG@10"] > 0
    # sampled ranking among 100 items is easier than ranking all 400
    assert ease["metrics"]["sampled_uniform_99"]["HR@10"] > ease["metrics"]["full"]["HR@10"]


def test_the_installed_package_benchmarks_outside_any_project(tmp_path):
    """The package alone (no conf/ or source tree beside it), run from a folder that is no
    Kedro project: the library's default parameters."""
    site = tmp_path / "site"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(Path(neurec.__file__).parent, site / "neurec", ignore=ignore)
    work = tmp_path / "work"
    work.mkdir()
    command = [sys.executable, "-m", "neurec.benchmark", "--models", "most_popular"]
    command += ["--threads", "1", "--out", "result.json"]
    env = {**os.environ, "PYTHONPATH": str(site)}
    ran = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "is not in a Kedro project: the library's default parameters" in ran.stderr
    result = json.loads((work / "result.json").read_text())
    assert result["models"]["most_popular"]["metrics"]["full"]["NDCG@10"] > 0


def test_tables_name_the_protocol_and_sort_by_ndcg(result_file, capsys):
    assert tables([str(result_file)]) == 0
    text = capsys.readouterr().out
    full = text.split("### `full`")[1].split("###")[0]
    assert "candidate seed 2024" in full
    rows = [line for line in full.splitlines() if line.startswith("| ")][1:]
    assert [row.split(" | ")[0] for row in rows] == ["| ease:l2=100", "| most_popular"]
    assert "### `sampled_uniform_99`: the test item(s) ranked among 99 negatives" in text


def test_tables_name_a_file_that_is_not_a_result(tmp_path, capsys):
    bad = tmp_path / "notes.json"
    bad.write_text('{"models": {}}')
    with pytest.raises(SystemExit) as stop:
        tables([str(bad)])
    assert stop.value.code == 2
    assert "notes.json: not a benchmark result file" in capsys.readouterr().err


def test_tables_keep_the_row_of_the_file_named_later(result_file, tmp_path, capsys):
    rerun = json.loads(result_file.read_text())
    rerun["models"]["ease:l2=100"]["metrics"]["full"]["NDCG@10"] = 0.999
    second = tmp_path / "rerun.json"
    second.write_text(json.dumps(rerun))
    tables([str(result_file), str(second)])
    assert "| 0.9990 |" in capsys.readouterr().out
    tables([str(second), str(result_file)])
    assert "| 0.9990 |" not in capsys.readouterr().out


def test_seeds_rerun_every_model_and_the_tables_give_mean_and_spread(tmp_path, capsys):
    out = tmp_path / "seeds.json"
    code = benchmark(
        [
            "--models", "most_popular", "gmf:epochs=2,factors=8",
            "--seeds", "1", "2",
            "--protocols", "full",
            "--threads", "1",
            "--env", "base",
            "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    models = json.loads(out.read_text())["models"]
    assert list(models) == [
        f"{spec} seed={seed}"
        for seed in (1, 2)
        for spec in ("most_popular", "gmf:epochs=2,factors=8")
    ]
    gmf = [models[f"gmf:epochs=2,factors=8 seed={seed}"]["metrics"]["full"] for seed in (1, 2)]
    assert gmf[0]["NDCG@10"] != gmf[1]["NDCG@10"]  # the seed reached the model
    capsys.readouterr()
    assert tables([str(out)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| gmf")]
    assert len(rows) == 1
    cells = rows[0].split(" | ")
    assert cells[1] == "1, 2"
    values = [g["NDCG@10"] for g in gmf]
    mean, spread = (float(part) for part in cells[2 + 4].split(" ± "))  # NDCG@10 column
    assert mean == pytest.approx(sum(values) / 2, abs=1e-4)
    assert spread == pytest.approx(abs(values[0] - values[1]) / 2**0.5, abs=1e-4)

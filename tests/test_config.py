"""Parameter blocks: typed, checked by one builder, and all checked before a run starts."""

import time
from pathlib import Path

import pytest
import yaml

from neurec import workflow
from neurec.errors import ConfigError
from neurec.evaluation import EvaluationConfig
from neurec.models import registry
from neurec.models.base import build_config
from neurec.pipeline_registry import register_pipelines
from neurec.pipelines.recommend.nodes import RecommendConfig
from neurec.pipelines.reporting.nodes import ReportConfig
from neurec.split import SplitConfig
from neurec.threads import ThreadsConfig
from neurec.training import TrainingConfig
from neurec.tuning import TuneConfig
from neurec.validation import (
    BLOCK_CONFIGS,
    as_params,
    check_parameters,
    effective_parameters,
    parameter_blocks,
)
from tests.conftest import PROJECT_ROOT
from tests.test_pipeline import SMALL_DATA, kedro_run

BLOCKS = {
    "split": SplitConfig,
    "evaluation": EvaluationConfig,
    "report": ReportConfig,
    "recommend": RecommendConfig,
    "training": TrainingConfig,
    "threads": ThreadsConfig,
    "tune": TuneConfig,
}


@pytest.mark.parametrize(
    ("block", "params", "message"),
    [
        ("split", {"methd": "random"}, r"split\.methd: unknown .*expected some of \['method'"),
        ("split", {"method": "shuffle"}, r"split\.method: expected one of"),
        ("split", {"min_user_interactions": -1}, r"split\.min_user_interactions: expected >= 0"),
        ("split", {"min_item_interactions": 2.5}, r"split\.min_item_interactions: expected int"),
        ("split", {"test_fraction": 1.5}, r"split\.test_fraction: expected a value in \(0, 1\)"),
        ("split", {"test_fraction": 0}, r"split\.test_fraction"),
        ("split", {"validation_fraction": 0.9}, r"split\.validation_fraction: expected 0 <="),
        ("split", {"rating_threshold": "high"}, r"split\.rating_threshold: expected float"),
        ("split", {"seed": -1}, r"split\.seed: expected >= 0"),
        ("evaluation", {"kss": [10]}, r"evaluation\.kss: unknown .*expected some of"),
        ("evaluation", {"ks": [0, 10]}, r"evaluation\.ks: expected positive cut-offs"),
        ("evaluation", {"ks": []}, r"evaluation\.ks"),
        ("evaluation", {"ks": 10}, r"evaluation\.ks: expected a list"),
        ("evaluation", {"batch_size": 0}, r"evaluation\.batch_size: expected > 0"),
        ("evaluation", {"protocols": []}, r"evaluation\.protocols: expected at least one"),
        ("evaluation", {"protocols": "full"}, r"evaluation\.protocols: expected a list"),
        ("evaluation", {"protocols": ["full", "full"]}, r"evaluation\.protocols: 'full' is"),
        ("evaluation", {"protocols": ["sampled_uniform_0"]}, r"evaluation\.protocols: .*one"),
        ("evaluation", {"protocols": ["top10"]}, r"evaluation\.protocols: unknown protocol"),
        ("evaluation", {"seed": -5}, r"evaluation\.seed: expected >= 0"),
        ("report", {"resamples": 10}, r"report\.resamples: unknown .*expected some of"),
        ("report", {"confidence": 95}, r"report\.confidence: expected a value in \(0, 1\)"),
        ("report", {"confidence": 1.0}, r"report\.confidence"),
        ("report", {"alpha": 0}, r"report\.alpha: expected a value in \(0, 1\)"),
        ("report", {"bootstrap_resamples": 0}, r"report\.bootstrap_resamples: expected > 0"),
        ("report", {"permutation_resamples": -1}, r"report\.permutation_resamples"),
        ("report", {"seed": "zero"}, r"report\.seed: expected int"),
        ("recommend", {"modle": "ease"}, r"recommend\.modle: unknown .*expected some of"),
        ("recommend", {"model": "nosuchmodel"}, r"recommend\.model: expected one of"),
        ("recommend", {"k": 0}, r"recommend\.k: expected > 0"),
        ("recommend", {"k": True}, r"recommend\.k: expected int"),
        ("training", {"resume": "yes"}, r"training\.resume: expected bool"),
        ("training", {"resum": True}, r"training\.resum: unknown .*expected some of"),
        ("threads", {"torch": 0}, r"threads\.torch: expected 'auto' or a positive integer"),
        ("tune", {"trials": 0}, r"tune\.trials: expected > 0"),
        ("tune", {"model": "nosuch"}, r"tune\.model: expected one of"),
    ],
)
def test_every_block_rejects_unknown_keys_and_invalid_values(block, params, message):
    with pytest.raises(ConfigError, match=rf"^parameter {message}"):
        build_config(BLOCKS[block], params, block)


def test_the_validation_hook_knows_every_typed_block():
    assert BLOCK_CONFIGS == BLOCKS


@pytest.mark.parametrize("env", ["base", "benchmark"])
def test_the_shipped_parameters_pass_every_check(env):
    parameters = workflow.project_parameters(PROJECT_ROOT, env)
    check_parameters(parameters, parameters)


CONF = Path(__file__).resolve().parents[1] / "conf"
TYPED = {**BLOCKS, **{name: model.config_class for name, model in registry().items()}}


def conf_blocks(env: str) -> dict[str, tuple[dict, list[str]]]:
    """Each top-level block of conf/<env>/parameters*.yml: (its keys, its file's lines)."""
    blocks = {}
    for path in sorted((CONF / env).glob("parameters*.yml")):
        text = path.read_text()
        for block, keys in (yaml.safe_load(text) or {}).items():
            blocks[block] = (keys or {}, text.splitlines())
    return blocks


def explained(lines: list[str], key: str) -> bool:
    """The key's line carries a comment, or the comment lines right above it do."""
    at = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{key}:"))
    return "#" in lines[at] or lines[at - 1].strip().startswith("#")


BASE, BENCHMARK = conf_blocks("base"), conf_blocks("benchmark")


@pytest.mark.parametrize("block", sorted(TYPED))
def test_each_default_is_stated_once_in_its_dataclass(block):
    """conf/base sets a key only to depart from the config's default, and says why; every
    other value comes from the dataclass (with its reason there). conf/benchmark only sets
    conf/base's departures back to the default (the full budget for real data)."""
    config_class, default = TYPED[block], TYPED[block]()
    keys, lines = BASE[block]
    configured = build_config(config_class, keys, block)
    for key in keys:
        assert getattr(configured, key) != getattr(default, key), f"{block}.{key} is the default"
        assert explained(lines, key), f"{block}.{key}: no comment saying why"
    restored = BENCHMARK.get(block, ({}, []))[0]
    assert set(restored) <= set(keys)
    benchmark = build_config(config_class, {**keys, **restored}, block)
    for key in restored:
        assert getattr(benchmark, key) == getattr(default, key), f"benchmark {block}.{key}"


def test_a_run_sees_every_block_completed_with_its_defaults():
    parameters = {"ease": {}, "gmf": {"factors": 16}, "evaluation": {"ks": [5]}, "data": {}}
    effective = effective_parameters(parameters)
    assert effective["ease"] == {"l2": 500.0, "max_items": None, "max_memory_gb": 8.0}
    assert effective["gmf"]["factors"] == 16 and effective["gmf"]["distributed"]["world_size"] == 1
    assert effective["evaluation"]["protocols"] == ["full"] and effective["data"] == {}
    assert effective["evaluation"]["ks"] == [5, 10]  # as the nodes build it
    for block, config_class in TYPED.items():  # read back as the same config
        config = config_class()
        assert build_config(config_class, as_params(config), block) == config
    # a bad block is left to the validation hook, for the pipelines that read it
    assert effective_parameters({"neumf": {"negatives": 0}}) == {"neumf": {"negatives": 0}}


def test_an_empty_block_gives_the_dataclass_defaults():
    assert build_config(SplitConfig, None, "split") == SplitConfig()
    assert EvaluationConfig().ks == (1, 5, 10, 20)
    assert EvaluationConfig(ks=(5, 1, 5)).ks == (1, 5, 10)  # NDCG@10 is always measured


def test_a_pipeline_checks_the_blocks_its_nodes_read():
    pipelines = register_pipelines()
    assert parameter_blocks(pipelines["ease"]) == [
        "data",
        "ease",
        "evaluation",
        "report",
        "split",
        "training",
    ]
    assert {"gmf", "ncf", "neumf"} <= set(parameter_blocks(pipelines["neumf"]))
    assert parameter_blocks(pipelines["recommend"]) == ["recommend"]


def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("pipeline", "params", "message"),
    [
        # today: fails only after GMF and NCF have trained (170 s on the default data)
        ("neumf", {"neumf": {"negatives": 0}}, r"^parameter neumf\.negatives: expected > 0"),
        # today: fails after EASE has saved a new model version
        (
            "ease",
            {"evaluation": {"protocols": ["full", "sampled_bogus_9"]}},
            r"^parameter evaluation\.protocols: unknown protocol 'sampled_bogus_9'",
        ),
        ("ease", {"split": {"methd": "random"}}, r"^parameter split\.methd: unknown"),
        ("ease", {"report": {"alpha": 2}}, r"^parameter report\.alpha"),
        # today: fails in NeuMF's fit, after GMF and NCF have trained
        (
            "neumf",
            {"neumf": {"layers": [32, 16, 8]}},
            r"^parameter neumf\.layers: \(32, 16, 8\) differs from the pre-trained model's "
            r"ncf\.layers",
        ),
    ],
)
def test_a_bad_parameter_stops_the_run_before_the_first_node(
    project_copy, pipeline, params, message
):
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=message):
        kedro_run(project_copy, pipeline, {**SMALL_DATA, **params})
    assert files_under(project_copy / "data") == []  # not even ingest ran: no model version
    assert time.perf_counter() - started < 30  # GMF + NCF alone train for minutes


def test_neumf_without_pretraining_may_differ_from_gmf_and_ncf():
    check_parameters({"neumf": {"pretrain": False, "factors": 4}}, ["gmf", "ncf", "neumf"])
    with pytest.raises(ConfigError, match=r"neumf\.factors: 4 differs .* gmf\.factors 8"):
        check_parameters({"neumf": {"factors": 4}, "gmf": {"factors": 8}}, ["gmf", "ncf", "neumf"])

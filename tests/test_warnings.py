"""`kedro run` shows progress and results only: no warning, from the project's code or from a
library it calls (the third-party ones that cannot be fixed here are dropped, each exactly,
in ``neurec.quiet``)."""

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import get_type_hints

import pandas as pd

import neurec
from neurec.models import registry
from neurec.quiet import silence_third_party_warnings
from neurec.serving import RecommenderModel
from neurec.training import TorchRecommender
from tests.test_pipeline import SMALL_DATA

# the kedro CLI as a user runs it, but with every warning raised from the project's own
# modules shown each time, DeprecationWarnings included (Python hides those by default)
KEDRO_SHOWING_PROJECT_WARNINGS = (
    "import sys, warnings; "
    "warnings.filterwarnings('always', module=r'neurec(\\.|$)'); "
    "from kedro.framework.cli import main; main()"
)
# a Python warning as printed ("UserWarning: ..."), or a log record at WARNING level
WARNING = re.compile(r"\b\w+Warning: |\bWARNING\b")
FIXED = (  # each printed on every `kedro` command before
    "register_new_resolver",  # OmegaConf's deprecated resolver API
    "dataset names contain '.'",  # Kedro: a node reading another namespace's "<model>.<x>"
    "Add type hints to the `predict` method",  # MLflow, at import of a PythonModel
    "CloudPickle",  # MLflow: the served model logged as a pickled object
)


def flat_params(params: dict) -> str:
    """``--params`` syntax: ``a.b=1,c=2``."""
    items = []
    for key, value in params.items():
        if isinstance(value, dict):
            items += [f"{key}.{item}" for item in flat_params(value).split(",")]
        else:
            items.append(f"{key}={value}")
    return ",".join(items)


def test_a_default_run_prints_no_warning(project_copy):
    params = dict(SMALL_DATA)
    for name, model_class in registry().items():  # every model, one short epoch
        if issubclass(model_class, TorchRecommender):
            params[name] = {"epochs": 1}
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(neurec.__file__).resolve().parents[1]),
        "COLUMNS": "200",  # rich wraps narrower terminals mid-message
    }
    env.pop("PYTHONWARNINGS", None)
    command = [sys.executable, "-c", KEDRO_SHOWING_PROJECT_WARNINGS, "run"]
    result = subprocess.run(
        [*command, "--params", flat_params(params)],
        cwd=project_copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Pipeline execution completed successfully" in output
    printed = [line for line in output.splitlines() if WARNING.search(line)]
    assert printed == [], "\n".join(printed)
    assert not [text for text in FIXED if text in output]


def test_the_served_model_declares_its_input_type():
    """MLflow warns about a PythonModel whose predict has no type hints (the one such warning
    neurec.quiet drops is kedro-mlflow's own class's)."""
    assert get_type_hints(RecommenderModel.predict)["model_input"] is pd.DataFrame


def test_the_third_party_filters_drop_only_their_modules_message():
    message = "register_new_resolver() is deprecated and will be removed"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_third_party_warnings()
        warnings.warn_explicit(
            message, UserWarning, "omegaconf_config.py", 1, module="kedro.config.omegaconf_config"
        )
        warnings.warn(message, UserWarning, stacklevel=1)  # from here: shown
    assert [str(w.message) for w in caught] == [message]
    assert caught[0].filename == __file__

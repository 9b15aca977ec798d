"""The tune node: a thin adapter over :mod:`neurec.tuning`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from neurec.pipelines.data.nodes import to_interactions
from neurec.provenance import split_fingerprint
from neurec.tuning import Tuning, tune


def tune_model(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    user_index: pd.DataFrame,
    item_index: pd.DataFrame,
    parameters: dict[str, Any],
    tuning_folder: Path,
    conf_folder: Path,
) -> dict[str, Any]:
    """Run or continue the study of ``tune.model`` on this split; the test split is no input.

    Takes every parameter (``parameters``) because the model is named by ``tune.model`` at
    run time: its block and ``<model>_search_space`` are read from there.
    """
    tuning = Tuning.from_parameters(parameters)
    return tune(
        tuning,
        to_interactions(train, user_index, item_index),
        to_interactions(validation, user_index, item_index),
        tuning_folder,
        conf_folder,
        dataset=split_fingerprint(train, validation, user_index, item_index),
    )

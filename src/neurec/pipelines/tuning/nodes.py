"""The tune node: a thin adapter over :mod:`neurec.tuning`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from neurec.split import Split
from neurec.tuning import Tuning, tune


def tune_model(
    split: Split, parameters: dict[str, Any], tuning_folder: Path, conf_folder: Path
) -> dict[str, Any]:
    """Run or continue the study of ``tune.model`` on this split; only its train and
    validation parts are read (the test part never reaches the study).

    Takes every parameter (``parameters``) because the model is named by ``tune.model`` at
    run time: its block and ``<model>_search_space`` are read from there.
    """
    tuning = Tuning.from_parameters(parameters)
    return tune(
        tuning,
        split.train,
        split.validation,
        tuning_folder,
        conf_folder,
        dataset=split.fingerprint,
    )

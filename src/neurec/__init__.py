"""neurec: neural recommenders as a Kedro project, with a plain-Python model library."""

import os

# Nothing phones home: MLflow's usage telemetry is off unless a user turns it on explicitly.
# MLflow reads the variable once, when `mlflow` is first imported (mlflow/telemetry), so it is
# set here: every entry point (`kedro`, `python -m neurec`, a notebook's KedroSession,
# `neurec.benchmark`) imports this package before anything imports mlflow, kedro-mlflow's
# plugin included (Kedro imports the project's settings before it loads plugins).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# `kedro run` shows progress and results only: MLflow's per-file download bars (it re-reads
# each logged model to validate its input example) are off unless a user turns them on.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from neurec.quiet import silence_third_party_warnings

silence_third_party_warnings()

__version__ = "0.1.0"
